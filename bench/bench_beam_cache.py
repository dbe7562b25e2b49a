"""Benchmark and parity check: the bottleneck cache in-process vs. on a Beam runner.

    python bench/bench_beam_cache.py [--module DIR] [--image_dir DIR] [--runner DirectRunner]
        [--beam_pipeline_options=--direct_num_workers=2,--direct_running_mode=multi_processing]

Needs the `beam` extra. Defaults use ../shared (the real MobileNet V2 module and all 500 photos of
flower_photos_small). Fills one cache each way into a temporary folder and prints both times, the
largest difference between the two caches' values and how many files are byte-identical.
"""
import argparse
import functools
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cache_parity import differences, in_process_cache
from bench.shared_inputs import MODULE, PHOTOS
from retrain.cache import beam_fill
from retrain.features.hub_module import load_hub_module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--module', default=MODULE)
    parser.add_argument('--image_dir', default=PHOTOS)
    parser.add_argument('--runner', default='DirectRunner')
    parser.add_argument('--beam_pipeline_options', default='')
    args = parser.parse_args()
    options = [o for o in args.beam_pipeline_options.split(',') if o]

    with tempfile.TemporaryDirectory() as temp:
        local_dir, beam_dir = os.path.join(temp, 'local'), os.path.join(temp, 'beam')
        examples, extractor, local_seconds = in_process_cache(args.image_dir, args.module,
                                                              local_dir)
        started = time.perf_counter()
        jobs = beam_fill.cache_jobs(args.image_dir, examples, beam_dir, extractor)
        computed = beam_fill.fill_cache(jobs, beam_dir, extractor,
                                         functools.partial(load_hub_module, args.module),
                                         args.runner, options)
        beam_seconds = time.perf_counter() - started
        largest, identical = differences(jobs, beam_dir, local_dir, extractor.bottleneck_size)
    print(f'images:                   {len(jobs)} ({computed} computed by Beam)')
    local_rate = len(jobs) / local_seconds
    print(f'in-process cache:         {local_seconds:8.1f} s  {local_rate:6.1f} img/s')
    print(f'Beam {args.runner:19s} {beam_seconds:8.1f} s  {len(jobs) / beam_seconds:6.1f} img/s')
    print(f'largest value difference: {largest:.3g}')
    print(f'byte-identical files:     {identical}/{len(jobs)}')


if __name__ == '__main__':
    main()
