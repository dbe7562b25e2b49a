"""Training speed of the multi-label head beside the softmax one (`python -m
bench.bench_multilabel`).

    python -m bench.bench_multilabel [--steps 4000] [--features 1280] [--labels 20] [--repeats 3]

Trains on random in-memory bottlenecks (every label on about a quarter of the images) with the
classic settings (batch 100, evaluation every 10 steps on a validation batch of 100, no
TensorBoard files) and prints a table of the best of `repeats` wall times. On a busy machine
set OPENBLAS_NUM_THREADS=1: BLAS threads spinning against other processes cost twenty times more.
"""
import argparse
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.train import loop
from retrain.train.heads import SigmoidHead


def _data(images: int, features: int, labels: int, multi_label: bool) -> Bottlenecks:
    rng = np.random.default_rng(0)
    split = {'training': images, 'validation': images // 8, 'testing': images // 8}
    x = {c: rng.random((n, features), dtype=np.float32) for c, n in split.items()}
    y = {c: ((rng.random((n, labels)) < 0.25).astype(np.float32) if multi_label
             else rng.integers(labels, size=n)) for c, n in split.items()}
    return Bottlenecks(x, y, {c: [''] * n for c, n in split.items()})


def _time(data: Bottlenecks, labels: int, steps: int, multi_label: bool) -> float:
    types = {'head_type': SigmoidHead} if multi_label else {}
    started = time.perf_counter()
    loop.train(data, labels, RetrainConfig(how_many_training_steps=steps, random_seed=0,
                                                summaries_dir=''), **types)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.bench_multilabel',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=4000)
    parser.add_argument('--features', type=int, default=1280)
    parser.add_argument('--labels', type=int, default=20)
    parser.add_argument('--images', type=int, default=2000)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)  # 400 evaluations' log lines are not the point.
    print(f'{"head":<10} {"steps":>6} {"features":>9} {"labels":>7} {"seconds":>8} {"steps/s":>8}')
    for multi_label in (False, True):
        data = _data(args.images, args.features, args.labels, multi_label)
        best = min(_time(data, args.labels, args.steps, multi_label)
                   for _ in range(args.repeats))
        print(f'{"sigmoid" if multi_label else "softmax":<10} {args.steps:>6} '
              f'{args.features:>9} {args.labels:>7} {best:>8.3f} {args.steps / best:>8.0f}')


if __name__ == '__main__':
    main()
