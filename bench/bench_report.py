"""What the run report costs beside a run: `python -m bench.bench_report [--image_dir DIR ...]`.

Two tables. Real: the bottlenecks of an image folder (MobileNet V2 from ../shared by default,
cached in --bottleneck_dir on the first run) and its files: the time of each finding as a warm run
pays it. Scale: synthetic bottlenecks (clusters of non-negative vectors like a module's, with
planted noisy copies) of growing size, to show the cost stays linear past EXACT_SEARCH_LIMIT, and
the share of planted copies the bucketed search still finds. A benchmark, not a test.
"""
import argparse
import os
import tempfile
import time
import tracemalloc
from typing import Callable, List, Tuple

import numpy as np

from bench.shared_inputs import add_input_flags
from retrain.report import findings


def _timed(function: Callable, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def real_rows(image_dir: str, module: str, bottleneck_dir: str) -> List[Tuple]:
    """(images, stat+hash s, near-duplicates s, label check s, find s) on a real folder."""
    from retrain.cache import bottleneck_files
    from retrain.data import image_lists
    from retrain.features.hub_module import load_hub_module
    from retrain.tasks.single_label import examples_of
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    data, _ = bottleneck_files.load_or_compute(image_dir, examples_of(classes), bottleneck_dir,
                                               load_hub_module(module, 0))
    unit, labels, paths, _ = findings._flatten(data)
    _, hashing = _timed(findings.exact_duplicate_pairs, paths)
    _, near = _timed(findings.near_duplicate_pairs, unit)
    _, label_check = _timed(lambda: findings.label_issues(
        findings.out_of_fold_probabilities(unit, labels, len(classes)), labels))
    _, total = _timed(findings.find, data, len(classes))
    return [(len(paths), unit.shape[1], hashing, near, label_check, total)]


def synthetic(n: int, dim: int, classes: int, copies: int, seed: int = 0):
    """Unit rows of clustered non-negative vectors, labels, and the planted (original, copy)."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(1.0, 1.0, (classes * 8, dim)).astype(np.float32)
    cluster = rng.integers(len(centres), size=n - copies)
    x = np.empty((n, dim), np.float32)
    x[:n - copies] = np.maximum(centres[cluster] + rng.normal(0, 0.8, (n - copies, dim)), 0)
    originals = rng.choice(n - copies, copies, replace=False)
    x[n - copies:] = x[originals] + rng.normal(0, 0.15, (copies, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.concatenate([cluster % classes, cluster[originals] % classes])
    return x, labels, set(zip(originals.tolist(), range(n - copies, n)))


def scale_rows(sizes: List[int], dim: int) -> List[Tuple]:
    """(images, near s, found/planted, label check s, peak MiB) for synthetic sets."""
    rows = []
    for n in sizes:
        unit, labels, planted = synthetic(n, dim, 5, 200)
        tracemalloc.start()
        (i, j, _), near = _timed(findings.near_duplicate_pairs, unit)
        found = {(int(a), int(b)) for a, b in zip(i, j)} & planted
        _, label_check = _timed(lambda unit=unit, labels=labels: findings.label_issues(
            findings.out_of_fold_probabilities(unit, labels, 5), labels))
        peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
        rows.append((n, near, f'{len(found)}/{len(planted)}', label_check, peak))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_flags(parser)
    parser.add_argument('--bottleneck_dir', default=os.path.join(tempfile.gettempdir(),
                                                                'bench_report_bottlenecks'))
    parser.add_argument('--sizes', default='3670,30000,100000')
    parser.add_argument('--dim', type=int, default=1280)
    args = parser.parse_args()
    if os.path.isdir(args.image_dir):
        print('| images | D | stat + hash s | near-duplicates s | label check s | all findings s |')
        print('|---|---|---|---|---|---|')
        for row in real_rows(args.image_dir, args.tfhub_module, args.bottleneck_dir):
            print('| {} | {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} |'.format(*row))
    print(f'\nSynthetic bottlenecks, D={args.dim}; exact search up to '
          f'{findings.EXACT_SEARCH_LIMIT} images, buckets beyond')
    print('| images | near-duplicates s | planted copies found | label check s | peak MiB |')
    print('|---|---|---|---|---|')
    for row in scale_rows([int(s) for s in args.sizes.split(',')], args.dim):
        print('| {} | {:.2f} | {} | {:.2f} | {:.0f} |'.format(*row))


if __name__ == '__main__':
    main()
