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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cache_parity import differences, in_process_cache
from bench.dask_cluster import bottlenecks_written, local_cluster
from bench.shared_inputs import MODULE, PHOTOS
from retrain.cache import beam_fill
from retrain.features.hub_module import load_hub_module


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

    with tempfile.TemporaryDirectory() as temp:
        local_dir, dask_dir = os.path.join(temp, 'local'), os.path.join(temp, 'dask')
        examples, extractor, local_seconds = in_process_cache(args.image_dir, args.module,
                                                              local_dir)
        jobs = beam_fill.cache_jobs(args.image_dir, examples, dask_dir, extractor)
        with local_cluster(temp, args.workers) as (address, logs):
            started = time.perf_counter()
            computed = beam_fill.fill_cache(jobs, dask_dir, extractor,
                                             functools.partial(load_hub_module, args.module),
                                             'DaskRunner', [f'--dask_client_address={address}'])
            dask_seconds = time.perf_counter() - started
            written = [bottlenecks_written(log) for log in logs]
        largest, _ = differences(jobs, dask_dir, local_dir, extractor.bottleneck_size)
    print(f'images:                   {len(jobs)} ({computed} computed on Dask)')
    for name, seconds in (('in-process cache:', local_seconds),
                          (f'Dask, {args.workers} workers:', dask_seconds)):
        print(f'{name:25s} {seconds:8.1f} s  {len(jobs) / seconds:6.1f} img/s')
    print(f'largest value difference: {largest:.3g}')
    print('bottlenecks per worker:   ' + ', '.join(str(n) for n in written))


if __name__ == '__main__':
    main()
