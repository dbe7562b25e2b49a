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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.shared_inputs import MODULE, PHOTOS
from retrain.cache import beam_fill, bottleneck_files
from retrain.data import image_lists
from retrain.features.hub_module import load_hub_module
from retrain.tasks.single_label import examples_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--module', default=MODULE)
    parser.add_argument('--image_dir', default=PHOTOS)
    parser.add_argument('--runner', default='DirectRunner')
    parser.add_argument('--beam_pipeline_options', default='')
    args = parser.parse_args()
    options = [o for o in args.beam_pipeline_options.split(',') if o]

    classes = image_lists.create_image_lists(args.image_dir, 10, 10)
    extractor = load_hub_module(args.module)
    with tempfile.TemporaryDirectory() as temp:
        local_dir, beam_dir = os.path.join(temp, 'local'), os.path.join(temp, 'beam')
        started = time.perf_counter()
        bottleneck_files.load_or_compute(args.image_dir, examples_of(classes), local_dir,
                                         extractor)
        local_seconds = time.perf_counter() - started
        started = time.perf_counter()
        jobs = beam_fill.cache_jobs(args.image_dir, examples_of(classes), beam_dir, extractor)
        computed = beam_fill.fill_cache(jobs, beam_dir, extractor,
                                         functools.partial(load_hub_module, args.module),
                                         args.runner, options)
        beam_seconds = time.perf_counter() - started
        largest, identical = 0.0, 0
        for job in jobs:
            local_path = job[1].replace(beam_dir, local_dir, 1)
            with open(job[1], encoding='utf-8') as a, open(local_path, encoding='utf-8') as b:
                beam_text, local_text = a.read(), b.read()
            identical += beam_text == local_text
            size = extractor.bottleneck_size
            largest = max(largest, float(np.max(np.abs(
                bottleneck_files.parse_values(beam_text, size) -
                bottleneck_files.parse_values(local_text, size)))))
    print(f'images:                   {len(jobs)} ({computed} computed by Beam)')
    local_rate = len(jobs) / local_seconds
    print(f'in-process cache:         {local_seconds:8.1f} s  {local_rate:6.1f} img/s')
    print(f'Beam {args.runner:19s} {beam_seconds:8.1f} s  {len(jobs) / beam_seconds:6.1f} img/s')
    print(f'largest value difference: {largest:.3g}')
    print(f'byte-identical files:     {identical}/{len(jobs)}')


if __name__ == '__main__':
    main()
