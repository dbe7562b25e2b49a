"""Scaled JPEG decoding (retrain's default, --nofast_jpeg_decoding turns it off): what it gains
in caching speed and what it does to the model.

    python -m bench.bench_fast_jpeg [--image_dir DIR] [--tfhub_module DIR] [--per_class 100]
                                    [--folds 5] [--steps 1000] [--grain 3] [--work_dir DIR]

Defaults use ../shared (flower_photos_small and the real MobileNet V2 module). Every photo is
upscaled to 12 megapixels with `--grain` (bench.large_images; about a second each, kept in
`--work_dir` when given, for the next run); each photo's bottleneck is computed three ways: from
the small photo, from the 12 MP one decoded at full scale (the classic values,
--nofast_jpeg_decoding) and decoded scaled down. Prints the caching rate of each, how close the
scaled and classic bottlenecks are to each other and to the small photo's, and for a new layer
trained as retrain trains it, with its unknown judgement, by cross-validation (the same folds
and validation images for every row): its test accuracy and the share of test images it calls
unknown (10% is meant), trained and served classic values; scaled ones; trained on scaled
values but served classic ones (a model fed photos through its exported graph, which decodes at
full scale); and trained on half classic, half scaled values (a cache an older run started),
served classic ones. Each row counts the images it gets right that the classic row misses and
the reverse, with the two-sided p-value of an exact sign test on those counts (McNemar's): a
small p would mean the difference is not chance.
"""
import argparse
import math
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np

from bench.large_images import PHONE_GRAIN, write_upscaled
from bench.shared_inputs import add_input_flags
from retrain.cache import bottleneck_files
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.features.loading import load_extractor
from retrain.train import loop, unknown


def _photos(image_dir: str, per_class: int) -> Dict[str, List[str]]:
    found = {}
    for name in sorted(os.listdir(image_dir)):
        folder = os.path.join(image_dir, name)
        if os.path.isdir(folder):
            found[name] = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                           if n.lower().endswith('.jpg')][:per_class]
    return found


def _features(extractor, paths: Sequence[str]) -> Tuple[np.ndarray, float]:
    """Bottlenecks of `paths` in order, and the images/s it took."""
    started = time.perf_counter()
    values = np.zeros((len(paths), extractor.bottleneck_size), np.float32)
    for indices, features, _ in bottleneck_files.compute_bottlenecks(extractor, paths):
        values[indices] = features
    return values, len(paths) / (time.perf_counter() - started)


def _judged(train: np.ndarray, served: np.ndarray, labels: np.ndarray, folds: np.ndarray,
            steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per image: whether the layer trained without its fold on `train` values classifies its
    `served` values right, and whether its unknown judgement calls them unknown. Of the rest, an
    eighth are validation images (retrain's default split: 10% of all), on which the judgement
    is fitted as retrain fits it; the same in every call."""
    right, called = np.zeros(len(labels), bool), np.zeros(len(labels), bool)
    classes = int(labels.max()) + 1
    rng = np.random.default_rng(0)
    config = RetrainConfig(how_many_training_steps=steps, random_seed=0, summaries_dir='')
    for fold in np.unique(folds):
        held = folds == fold
        rest = rng.permutation(np.flatnonzero(~held))
        split = {'training': rest[len(rest) // 8:], 'validation': rest[:len(rest) // 8],
                 'testing': rest[:0]}
        data = Bottlenecks({k: train[v] for k, v in split.items()},
                           {k: labels[v] for k, v in split.items()},
                           {k: [''] * len(v) for k, v in split.items()})
        head = loop.train(data, classes, config, log=False)
        model = unknown.fit(data.features['training'], data.labels['training'], head.weights,
                            head.biases, data.features['validation'], data.labels['validation'],
                            loop.layer_trainer(classes, config))
        logits = served[held] @ head.weights + head.biases
        right[held] = logits.argmax(1) == labels[held]
        called[held] = unknown.score(model, served[held], logits) > 0
    return right, called


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def sign_test(gained: int, lost: int) -> float:
    """Two-sided exact p-value that `gained` vs `lost` differ only by chance (McNemar's test)."""
    total, fewer = gained + lost, min(gained, lost)
    tail = sum(math.comb(total, k) for k in range(fewer + 1)) / 2 ** total
    return min(1.0, 2 * tail)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_flags(parser)
    parser.add_argument('--per_class', type=int, default=100)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--grain', type=float, default=PHONE_GRAIN)
    parser.add_argument('--work_dir', default='', help='Keep the 12 MP photos here.')
    args = parser.parse_args(argv)
    classic = load_extractor(RetrainConfig(tfhub_module=args.tfhub_module,
                                           fast_jpeg_decoding=False))
    scaled = load_extractor(RetrainConfig(tfhub_module=args.tfhub_module,
                                          fast_jpeg_decoding=True))
    photos = _photos(args.image_dir, args.per_class)
    small = [p for name in photos for p in photos[name]]
    labels = np.array([i for i, name in enumerate(photos) for _ in photos[name]])
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work_dir or temporary
        large = [os.path.join(work, os.path.relpath(p, args.image_dir).replace(os.sep, '_')
                              + f'_grain{args.grain:g}.jpg') for p in small]
        for source, target in zip(small, large):
            if not os.path.exists(target):
                write_upscaled(source, target, grain=args.grain)
        for extractor in (classic, scaled):  # Warm-up: freezing, tracing, the page cache.
            _features(extractor, large[:16])
        values = {'small photos': _features(classic, small),
                  '12 MP, classic': _features(classic, large),
                  '12 MP, scaled': _features(scaled, large)}
    full, fast = values['12 MP, classic'][0], values['12 MP, scaled'][0]
    folds = np.random.default_rng(0).permutation(len(labels)) % args.folds
    mixed = np.where((np.arange(len(labels)) % 2 == 0)[:, np.newaxis], full, fast)
    print(f'{len(small)} photos of {len(photos)} classes, upscaled to 12 MP, grain '
          f'{args.grain:g}; '
          f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}')
    print(f'{"caching":<30}{"images/s":>10}')
    for name, (_, rate) in values.items():
        print(f'{name:<30}{rate:>10.1f}')
    cosine = _cosine(full, fast)
    print(f'scaled vs classic bottlenecks: cosine min {cosine.min():.4f}, mean {cosine.mean():.4f}')
    own = values['small photos'][0]
    print(f'mean cosine to the small photo\'s bottleneck: classic {_cosine(full, own).mean():.4f}, '
          f'scaled {_cosine(fast, own).mean():.4f}')
    rows = {'trained and served classic': (full, full),
            'trained and served scaled': (fast, fast),
            'trained scaled, served classic': (fast, full),
            'trained half and half, served classic': (mixed, full)}
    print(f'{"new layer, {} folds".format(args.folds):<38}{"accuracy":>9}'
          f'{"vs classic: gained":>20}{"lost":>6}{"p":>7}{"called unknown":>16}')
    base = None
    for name, (train, served) in rows.items():
        right, called = _judged(train, served, labels, folds, args.steps)
        base = right if base is None else base
        gained, lost = int((right & ~base).sum()), int((base & ~right).sum())
        print(f'{name:<38}{right.mean():>9.1%}{gained:>20d}{lost:>6d}'
              f'{sign_test(gained, lost):>7.2f}{called.mean():>16.1%}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
