"""--fast_jpeg_decoding: what it gains in caching speed and what it does to accuracy.

    python -m bench.bench_fast_jpeg [--image_dir DIR] [--tfhub_module DIR] [--per_class 100]
                                    [--folds 5] [--steps 1000]

Defaults use ../shared (flower_photos_small and the real MobileNet V2 module). Every photo is
upscaled to 12 megapixels (bench.large_images); each photo's bottleneck is computed three ways:
from the small photo, from the 12 MP one decoded at full scale (the classic values) and decoded
scaled down (--fast_jpeg_decoding). Prints the caching rate of each, how close the scaled
bottlenecks are to the classic ones, and the test accuracy of a new layer trained as retrain
trains it, by cross-validation (the same folds for every row): trained and tested on classic
values; on scaled ones; and trained on scaled values but tested on classic ones (a model
trained with the flag, then fed photos through its exported graph, which decodes at full
scale).
"""
import argparse
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np

from bench.large_images import write_upscaled
from bench.shared_inputs import add_input_flags
from retrain.cache import bottleneck_files
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.features.loading import load_extractor
from retrain.train import loop


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
    for indices, features in bottleneck_files.compute_bottlenecks(extractor, paths):
        values[indices] = features
    return values, len(paths) / (time.perf_counter() - started)


def _accuracy(train: np.ndarray, test: np.ndarray, labels: np.ndarray, folds: np.ndarray,
              steps: int) -> np.ndarray:
    """Per image: whether the layer trained without its fold (on `train` values) classifies its
    `test` values right."""
    right = np.zeros(len(labels), bool)
    classes = int(labels.max()) + 1
    for fold in np.unique(folds):
        held = folds == fold
        data = Bottlenecks({'training': train[~held], 'validation': train[:0],
                            'testing': train[:0]},
                           {'training': labels[~held], 'validation': labels[:0],
                            'testing': labels[:0]},
                           {'training': [''] * int((~held).sum()), 'validation': [],
                            'testing': []})
        head = loop.train(data, classes, RetrainConfig(how_many_training_steps=steps,
                                                       random_seed=0, summaries_dir=''))
        right[held] = head.predict(test[held]).argmax(1) == labels[held]
    return right


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_flags(parser)
    parser.add_argument('--per_class', type=int, default=100)
    parser.add_argument('--folds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=1000)
    args = parser.parse_args(argv)
    classic = load_extractor(RetrainConfig(tfhub_module=args.tfhub_module))
    scaled = load_extractor(RetrainConfig(tfhub_module=args.tfhub_module,
                                          fast_jpeg_decoding=True))
    photos = _photos(args.image_dir, args.per_class)
    small = [p for name in photos for p in photos[name]]
    labels = np.array([i for i, name in enumerate(photos) for _ in photos[name]])
    with tempfile.TemporaryDirectory() as work:
        large = [os.path.join(work, str(i) + '.jpg') for i in range(len(small))]
        for source, target in zip(small, large):
            write_upscaled(source, target)
        _features(classic, large[:16])  # Warm-up: tracing, the page cache.
        values = {'small photos': _features(classic, small),
                  '12 MP, classic': _features(classic, large),
                  '12 MP, --fast_jpeg_decoding': _features(scaled, large)}
    full, fast = values['12 MP, classic'][0], values['12 MP, --fast_jpeg_decoding'][0]
    cosine = (full * fast).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(fast, axis=1)
    folds = np.random.default_rng(0).permutation(len(labels)) % args.folds
    print(f'{len(small)} photos of {len(photos)} classes, upscaled to 12 MP; '
          f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}')
    print(f'{"caching":<30}{"images/s":>10}')
    for name, (_, rate) in values.items():
        print(f'{name:<30}{rate:>10.1f}')
    print(f'scaled vs classic bottlenecks: cosine min {cosine.min():.4f}, mean {cosine.mean():.4f}')
    rows = {'trained and tested classic': _accuracy(full, full, labels, folds, args.steps),
            'trained and tested scaled': _accuracy(fast, fast, labels, folds, args.steps),
            'trained scaled, tested classic': _accuracy(fast, full, labels, folds, args.steps)}
    base = rows['trained and tested classic']
    print(f'{"new layer, {} folds".format(args.folds):<34}{"accuracy":>9}'
          f'{"vs classic: gained":>20}{"lost":>6}')
    for name, right in rows.items():
        print(f'{name:<34}{right.mean():>9.1%}{int((right & ~base).sum()):>20d}'
              f'{int((base & ~right).sum()):>6d}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
