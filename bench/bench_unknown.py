"""Which score tells images unlike the training data (`python -m bench.bench_unknown`).

    python -m bench.bench_unknown --bottleneck_dir DIR [--known 3] [--splits 10] [--steps 4000]
                                [--shrinkage 0.9] [--validation_flagged 0.1]
                                [--outside OTHER_DIR [--folds 5]] [--seed 0]

Works on a filled bottleneck cache of class folders (run `python -m retrain --image_dir ...
--bottleneck_dir DIR --how_many_training_steps 0` once): for each split, the head is trained
as retrain trains it on some classes (60% of their images; 20% validation, 20% test) and the
other classes are shown as out-of-domain; with --outside, every class is known, in 5 folds
(3/5 training, 1/5 validation, 1/5 test; --folds 10 gives retrain's default split, 80/10/10,
where fewer than 100 validation images bring held-out training images into the reference),
and the images of another cache (run retrain with --how_many_training_steps 0 on, say, ants
and bees) are the out-of-domain ones. Each score
(higher: more unknown) is rated by its AUROC (test in-domain against out-of-domain) and by the
share of out-of-domain images flagged at the threshold that flags 10% of the in-domain test
images, and at the default operating point (the threshold that flags 10% of the validation
images; another share with --validation_flagged); a line gives what the exported model itself
calls unknown (score above 0). It also prints the test images' expected calibration error
without and with --calibrate's temperature, and with a temperature fitted on the test images
themselves (the floor of that estimate on so few images), and over the test images of all
splits pooled, where a split's ~80 images estimate it too high; with --outside, the share of
each of its folders flagged at 10% in-domain by the chosen score. Set OPENBLAS_NUM_THREADS=1
on a busy machine.
"""
import argparse
import glob
import itertools
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.train import calibration, loop, unknown


def _load(bottleneck_dir: str) -> dict:
    """{class: [N, D] bottlenecks} from the classic text files."""
    found = {}
    for folder in sorted(glob.glob(os.path.join(bottleneck_dir, '*', ''))):
        rows = [np.loadtxt(path, delimiter=',', dtype=np.float32)
                for path in sorted(glob.glob(os.path.join(folder, '*.txt')))]
        if rows:
            found[os.path.basename(os.path.dirname(folder))] = np.stack(rows)
    return found


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(outside score > inside score), ties counted half."""
    order = np.concatenate([inside, outside]).argsort(kind='stable')
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([inside, outside])
    for value in np.unique(values):  # Average ranks of ties.
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    rank_sum = ranks[len(inside):].sum()
    return float((rank_sum - len(outside) * (len(outside) + 1) / 2) / (len(inside) * len(outside)))


def _scores(model: unknown.Fitted, head, train_x: np.ndarray, x: np.ndarray) -> dict:
    """Every candidate score of the bottlenecks x, higher meaning more unknown."""
    logits = x @ head.weights + head.biases
    found = unknown.parts(model, x, logits)
    shifted = logits - logits.max(1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    energy = -(logits.max(1) + np.log(np.exp(shifted).sum(1)))
    unit = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    cosine = 1 - (x / np.linalg.norm(x, axis=1, keepdims=True) @ unit.T).max(1)
    centered = unknown.rooted(x) - model.center
    maha = unknown.distances(model.within, centered[:, None, :] - model.class_means[None])
    return {'max softmax': -softmax.max(1), 'energy': energy, 'cosine kNN': cosine,
            'Mahalanobis (roots)': maha.min(1), 'relative Mahalanobis (roots)': found[:, 0],
            'chosen (unknown.score)': unknown.score(model, x, logits)}


def _rate(inside, outside, validation) -> tuple:
    at_10 = np.quantile(inside, 0.9)
    at_default = unknown.threshold(validation, unknown.VALIDATION_FLAGGED)
    return (_auroc(inside, outside), float(np.mean(outside > at_10)),
            float(np.mean(inside > at_default)), float(np.mean(outside > at_default)))


def _split(classes: dict, known: tuple, fold, rng: np.random.Generator,
           orders: dict, folds: int) -> Bottlenecks:
    """The known classes' bottlenecks in training, validation and test: drawn at random 60/20/20
    (fold None), or fold `fold` of `folds` over each class in the fixed `orders` (one to test,
    the next to validate)."""
    parts = {'training': [], 'validation': [], 'testing': []}
    for label, name in enumerate(known):
        if fold is None:
            x = classes[name][rng.permutation(len(classes[name]))]
            chunks = np.split(x, (int(len(x) * 0.6), int(len(x) * 0.8)))
        else:
            parts_of = np.array_split(classes[name][orders[name]], folds)
            chunks = (np.concatenate([f for i, f in enumerate(parts_of)
                                      if i not in (fold, (fold + 1) % folds)]),
                      parts_of[(fold + 1) % folds], parts_of[fold])
        for part, chunk in zip(parts, chunks):
            parts[part].append((chunk, np.full(len(chunk), label)))
    features = {p: np.concatenate([c for c, _ in v]) for p, v in parts.items()}
    labels = {p: np.concatenate([y for _, y in v]) for p, v in parts.items()}
    return Bottlenecks(features, labels, {p: [''] * len(v) for p, v in features.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bottleneck_dir', required=True)
    parser.add_argument('--known', type=int, default=3, help='classes trained on per split')
    parser.add_argument('--splits', type=int, default=10)
    parser.add_argument('--steps', type=int, default=4000)
    parser.add_argument('--shrinkage', type=float, default=unknown.SHRINKAGE,
                        help='covariance shrinkage to try (unknown.SHRINKAGE)')
    parser.add_argument('--outside', default='',
                        help='filled bottleneck cache of images of other kinds (e.g. ants and '
                        'bees): every class is then known, and each of --folds folds tests on '
                        'another part of every class (--known then ignored; --splits caps the '
                        'folds)')
    parser.add_argument('--folds', type=int, default=5,
                        help='with --outside: folds of every class, one tested and the next '
                        'validating in turn (10: retrain\'s default 80/10/10 split)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random draw of the splits (of the folds with '
                        '--outside): other seeds tell how much a figure owes to one draw')
    parser.add_argument('--validation_flagged', type=float, default=unknown.VALIDATION_FLAGGED,
                        help='the operating point to try: the share of validation images '
                        'flagged (unknown.VALIDATION_FLAGGED)')
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    unknown.SHRINKAGE = args.shrinkage
    unknown.VALIDATION_FLAGGED = args.validation_flagged
    classes = _load(args.bottleneck_dir)
    names = sorted(classes)
    rng = np.random.default_rng(args.seed)
    if len(classes) < 2:
        parser.error(f'{args.bottleneck_dir} holds no bottleneck files of two classes or more')
    if args.outside:
        other = _load(args.outside)
        if not other:
            parser.error(f'--outside {args.outside} holds no bottleneck files')
        outside_images = np.concatenate(list(other.values()))
        outside_kinds = np.concatenate([np.full(len(x), kind) for kind, x in other.items()])
        orders = {name: rng.permutation(len(classes[name])) for name in names}
        splits = [(tuple(names), fold) for fold in range(min(args.splits, args.folds))]
    else:
        splits = [(known, None) for known in
                  itertools.combinations(names, args.known)][:args.splits]
    totals: dict = {}
    fit_times = []
    errors = []  # Test-set ECE without, with --calibrate and with the test's own T, per split.
    pooled = []  # (probabilities without, with --calibrate, labels) of each split's test images.
    judged = []  # Share of in-domain test and out-of-domain images the model calls unknown.
    by_kind = []  # With --outside: share of each of its folders flagged at 10% in-domain.
    for known, fold in splits:
        data = _split(classes, known, fold, rng, orders if args.outside else {}, args.folds)
        features, labels = data.features, data.labels
        config = RetrainConfig(how_many_training_steps=args.steps, random_seed=0,
                               summaries_dir='')
        head = loop.train(data, len(known), config)
        started = time.perf_counter()
        model = unknown.fit(features['training'], labels['training'], head.weights,
                            head.biases, features['validation'], labels['validation'],
                            loop.layer_trainer(len(known), config))
        fit_times.append(time.perf_counter() - started)
        outside = (outside_images if args.outside else
                   np.concatenate([classes[n] for n in names if n not in known]))
        sets = {k: _scores(model, head, features['training'], x)
                for k, x in (('in', features['testing']), ('out', outside),
                             ('val', features['validation']))}
        judged.append([np.mean(unknown.score(model, x, x @ head.weights + head.biases) > 0)
                       for x in (features['testing'], outside)])
        for name in sets['in']:
            totals.setdefault(name, []).append(
                _rate(sets['in'][name], sets['out'][name], sets['val'][name]))
        if args.outside:
            chosen = sets['out']['chosen (unknown.score)']
            at_10 = np.quantile(sets['in']['chosen (unknown.score)'], 0.9)
            by_kind.append({kind: float(np.mean(chosen[outside_kinds == kind] > at_10))
                            for kind in other})
        tuned, oracle = (calibration.calibrated(head, calibration.fit_temperature(
            features[part] @ head.weights + head.biases, labels[part]) or 1.0)
            for part in ('validation', 'testing'))
        errors.append([calibration.expected_calibration_error(h.predict(features['testing']),
                                                              labels['testing'])
                       for h in (head, tuned, oracle)])
        pooled.append((head.predict(features['testing']), tuned.predict(features['testing']),
                       labels['testing']))
    header = (f'{len(splits)} folds: train on all {len(names)} classes, '
              f'{len(outside_images)} images of {args.outside} out-of-domain'
              if args.outside else
              f'{len(splits)} splits: train on {args.known} of {len(names)} classes, the others '
              f'out-of-domain')
    _print(f'{header}; {args.steps} steps; means (min) over splits', totals, judged, fit_times,
           errors, pooled)
    if by_kind:
        print('chosen score, share of each --outside folder flagged at 10% in-domain: ' +
              ', '.join(f'{kind} {np.mean([row[kind] for row in by_kind]):.1%}'
                        for kind in by_kind[0]))


def _print(header: str, totals: dict, judged: list, fit_times: list, errors: list,
           pooled: list) -> None:
    """The table of scores and the lines after it (module doc)."""
    print(header)
    print(f'{"score":<26}{"AUROC":>14}{"OOD@10%ID":>14}{"ID@default":>12}{"OOD@default":>13}')
    for name, rows in totals.items():
        rows = np.array(rows)
        mean, low = rows.mean(0), rows.min(0)
        print(f'{name:<26}{mean[0]:>8.3f} ({low[0]:.2f}){mean[1]:>8.1%} ({low[1]:.0%})'
              f'{mean[2]:>12.1%}{mean[3]:>13.1%}')
    inside, out = np.mean(judged, axis=0)
    print(f'the model\'s own judgement (unknown score above 0): {inside:.1%} of in-domain test '
          f'images, {out:.1%} of out-of-domain images called unknown (mean over splits)')
    print(f'fit time: {max(fit_times) * 1000:.0f} ms at most')
    before, after, floor = np.mean(errors, axis=0)
    print(f'--calibrate: test expected calibration error {before:.3f} before, {after:.3f} after '
          f'(mean over splits; {floor:.3f} with the temperature fitted on the test images '
          f'themselves: the least that a temperature reaches on this many images)')
    together = [np.concatenate(parts) for parts in zip(*pooled)]
    print(f'--calibrate: test expected calibration error over the {len(together[2])} test '
          f'images of all splits together (each scored by its own split\'s layer): '
          f'{calibration.expected_calibration_error(together[0], together[2]):.3f} before, '
          f'{calibration.expected_calibration_error(together[1], together[2]):.3f} after')

if __name__ == '__main__':
    main()
