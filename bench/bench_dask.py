"""Benchmark and parity check: the bottleneck cache in-process vs. on a Dask cluster.

    python bench/bench_dask.py [--module DIR] [--image_dir DIR] [--workers 2]

Needs the `dask` extra; defaults use ../shared (the real MobileNet V2 module and all 500 photos of
flower_photos_small), and without either it says so and exits 0. Starts a scheduler and
`--workers` one-thread workers on loopback, fills one cache in-process and one through Beam's
Dask runner into a temporary folder, and prints both times (the cluster's includes each worker
loading TensorFlow and the model), the largest difference between the two caches' values and
how many bottlenecks each worker wrote.
"""
import argparse
import functools
import importlib.util
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.dask_cluster import bottlenecks_written, local_cluster
from bench.shared_inputs import MODULE, PHOTOS
from retrain.cache import beam_fill, bottleneck_files
from retrain.data import image_lists
from retrain.features.hub_module import load_hub_module
from retrain.tasks.single_label import examples_of


def _largest_difference(jobs, local_dir: str, dask_dir: str, size: int) -> float:
    largest = 0.0
    for job in jobs:
        dask_values = bottleneck_files.read_bottleneck(job[1], size)
        local_values = bottleneck_files.read_bottleneck(job[1].replace(dask_dir, local_dir, 1),
                                                        size)
        largest = max(largest, float(np.max(np.abs(dask_values - local_values))))
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--module', default=MODULE)
    parser.add_argument('--image_dir', default=PHOTOS)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args()
    missing = [m for m in ('apache_beam', 'dask', 'distributed') if not importlib.util.find_spec(m)]
    missing += [p for p in (args.module, args.image_dir) if not os.path.isdir(p)]
    if missing:
        print(f'skipped: {", ".join(missing)} not found (pip install ".[dask]"; ../shared)')
        return

    classes = image_lists.create_image_lists(args.image_dir, 10, 10)
    extractor = load_hub_module(args.module)
    with tempfile.TemporaryDirectory() as temp:
        local_dir, dask_dir = os.path.join(temp, 'local'), os.path.join(temp, 'dask')
        started = time.perf_counter()
        bottleneck_files.load_or_compute(args.image_dir, examples_of(classes), local_dir,
                                         extractor)
        local_seconds = time.perf_counter() - started
        jobs = beam_fill.cache_jobs(args.image_dir, examples_of(classes), dask_dir, extractor)
        with local_cluster(temp, args.workers) as (address, logs):
            started = time.perf_counter()
            computed = beam_fill.fill_cache(jobs, dask_dir, extractor,
                                             functools.partial(load_hub_module, args.module),
                                             'DaskRunner', [f'--dask_client_address={address}'])
            dask_seconds = time.perf_counter() - started
            written = [bottlenecks_written(log) for log in logs]
        largest = _largest_difference(jobs, local_dir, dask_dir, extractor.bottleneck_size)
    print(f'images:                   {len(jobs)} ({computed} computed on Dask)')
    for name, seconds in (('in-process cache:', local_seconds),
                          (f'Dask, {args.workers} workers:', dask_seconds)):
        print(f'{name:25s} {seconds:8.1f} s  {len(jobs) / seconds:6.1f} img/s')
    print(f'largest value difference: {largest:.3g}')
    print('bottlenecks per worker:   ' + ', '.join(str(n) for n in written))


if __name__ == '__main__':
    main()
