"""Benchmark: distorted training images per second, batched (this project) vs. one at a time.

    python bench/bench_distortions.py [--module DIR] [--image_dir DIR] [--batch 100] [--steps 5]

Defaults use ../shared (the real MobileNet V2 module and flower_photos_small). Prints a table:
the one-time decode into memory, distortion alone, distortion plus the feature extractor (what a
training step costs), and the classic way (read, decode, distort and extract each image alone).
"""
import argparse
import glob
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.shared_inputs import MODULE, PHOTOS
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.features.hub_module import load_hub_module
from retrain.train import distortions


def _rate(count: int, seconds: float) -> str:
    return f'{count / seconds:10.1f}'


def _time(function, repeats: int) -> float:
    function()  # Warm-up: tracing and first allocation.
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--module', default=MODULE)
    parser.add_argument('--image_dir', default=PHOTOS)
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--classic_images', type=int, default=20)
    args = parser.parse_args()

    paths = sorted(glob.glob(os.path.join(args.image_dir, '*', '*.jpg')))
    extractor = load_hub_module(args.module)
    config = RetrainConfig(flip_left_right=True, random_crop=10, random_scale=10,
                                          random_brightness=10)
    size = distortions.working_size(extractor.image_size, distortions.max_zoom(config), len(paths))

    started = time.perf_counter()
    images = distortions.load_images(paths, size)
    decode_seconds = time.perf_counter() - started
    batches = distortions.ImageBatches(images, np.zeros(len(paths), np.int64), extractor, config,
                                       seed=0)
    rng = np.random.default_rng(0)

    def indices():
        return tf.constant(rng.integers(len(paths), size=args.batch), tf.int32)

    distort_seconds = _time(lambda: batches.distorted(indices()).numpy(), args.steps)
    step_seconds = _time(lambda: batches.bottlenecks(indices())[0].numpy(), args.steps)
    plain = tf.constant(images[:args.batch].astype(np.float32) / 255)[:, :extractor.image_size[0],
                                                                      :extractor.image_size[1]]
    extract_seconds = _time(lambda: extractor(plain).numpy(), args.steps)

    def classic():
        """The classic script's work per example: its own decode, resize, crop, flip, scale."""
        height, width = extractor.image_size
        for path in paths[:args.classic_images]:
            zoom = (1 + config.random_crop / 100) * rng.uniform(1, 1 + config.random_scale / 100)
            image = image_io.decode_and_resize(tf.io.read_file(path),
                                               (int(height * zoom), int(width * zoom)))
            image = tf.image.random_flip_left_right(tf.image.random_crop(image, [height, width, 3]))
            image *= rng.uniform(1 - config.random_brightness / 100,
                                 1 + config.random_brightness / 100)
            extractor(image[tf.newaxis]).numpy()
    classic_seconds = _time(classic, 1)

    print(f'{len(paths)} images from {args.image_dir}, working size {size[0]}x{size[1]}, '
          f'batch {args.batch}, {os.cpu_count()} CPUs, TF {tf.__version__}')
    print(f'{"stage":58s} {"images/s":>10s}')
    rows = [
        ('decode + resize into memory (once per run)', _rate(len(paths), decode_seconds)),
        ('distort a batch (gather, crop/scale, flip, brightness)', _rate(args.batch,
                                                                         distort_seconds)),
        ('extractor alone on an undistorted batch', _rate(args.batch, extract_seconds)),
        ('distorted training batch: distort + extractor', _rate(args.batch, step_seconds)),
        ('classic: read + decode + distort + extractor per image',
         _rate(args.classic_images, classic_seconds)),
    ]
    for name, rate in rows:
        print(f'{name:58s} {rate}')


if __name__ == '__main__':
    main()
