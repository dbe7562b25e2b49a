"""Training on randomly distorted images: decoded once, distorted in batches, then extracted.

The classic flags keep their meaning: each training example is scaled up by a fixed margin of
`random_crop`% times a random 1..(1 + `random_scale`%) factor, a window of the model's input size
is cut from it at a random place, it is mirrored with probability 1/2 (`flip_left_right`), and
its pixels are multiplied by a random factor in 1 -/+ `random_brightness`%. The product is
clipped to [0, 1], the range the model saw in training and sees in the exported graph.

The classic scripts decoded one JPEG and ran the whole network per example, per step. Here every
training image is decoded and resized once into one uint8 array in memory, at the largest size a
crop window can ask for; each step gathers its batch from it, distorts the whole batch with a few
batched ops (one `crop_and_resize` does scale, crop and resize) and runs the extractor once on the
batch. The cache is bypassed for these batches: a distorted image's bottleneck is never reused.
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.common.errors import ToolError
from retrain.common.logs import Progress
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.features.extractors import FeatureExtractor

# Decoded training images may take this much memory before the working size is lowered.
DEFAULT_MEMORY_BUDGET = 1 << 30
_DECODE_BATCH = 32


def max_zoom(config: RetrainConfig) -> float:
    """How much larger than the model input the largest pre-crop image is."""
    return (1 + config.random_crop / 100) * (1 + config.random_scale / 100)


def working_size(image_size: Tuple[int, int], zoom: float, count: int,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Tuple[int, int]:
    """The size images are kept at: the input size times `zoom`, lowered to fit the budget.

    At that size the smallest crop window still maps one stored pixel to one model pixel; a
    smaller size (when memory is short) only blurs the most zoomed-in crops a little.
    """
    height, width = (math.ceil(side * zoom) for side in image_size)
    if count and count * height * width * 3 > memory_budget:
        shrink = math.sqrt(memory_budget / (count * height * width * 3))
        height, width = max(8, int(height * shrink)), max(8, int(width * shrink))
        logging.warning('Keeping %d decoded training images at %dx%d to stay within %.1f GiB',
                        count, height, width, memory_budget / (1 << 30))
    return height, width


def load_images(paths: Sequence[str], size: Tuple[int, int],
                progress_description: str = 'Decoding training images',
                allow_truncated: bool = False) -> np.ndarray:
    """Decodes and resizes every image of `paths` -> uint8 [N, height, width, 3], in order.

    Decoding runs in parallel in tf.data. An image that fails (it had a cached bottleneck but
    is unreadable now) ends the run with a one-line error naming it.
    """
    images = np.zeros((len(paths), size[0], size[1], 3), np.uint8)
    done = np.zeros(len(paths), bool)
    progress = Progress(progress_description, len(paths))
    for indices, batch, _ in image_io.image_batches(paths, size, _DECODE_BATCH,
                                                    allow_truncated):
        indices = indices.numpy()
        images[indices] = tf.image.convert_image_dtype(batch, tf.uint8, saturate=True).numpy()
        done[indices] = True
        progress.update(len(indices))
    progress.close()
    if not done.all():
        path = paths[int(np.flatnonzero(~done)[0])]
        reason = image_io.describe_decode_error(path, allow_truncated=allow_truncated)
        raise ToolError(f'cannot use image {path}: {reason or "could not be decoded"}')
    return images


class ImageBatches:
    """Training batches of (distorted) decoded images, and their bottlenecks.

    `images` is uint8 [N, h, w, 3] in the order of `labels`, the training split's order, so the
    indices drawn by training's class sampler address both.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, extractor: FeatureExtractor,
                 distortions: RetrainConfig, seed: Optional[int] = None):
        self.images = tf.constant(images)
        self.labels = tf.constant(labels)  # Class indices, or 0/1 rows of label sets.
        self.extractor = extractor
        self.distortions = distortions
        self.generator = (tf.random.Generator.from_seed(seed) if seed is not None
                          else tf.random.Generator.from_non_deterministic_state())

    @tf.function(autograph=False)
    def distorted(self, indices: tf.Tensor) -> tf.Tensor:
        """float32 [B, H, W, 3] in [0, 1]: the images at `indices`, each distorted anew."""
        d = self.distortions
        count = tf.shape(indices)[0]
        images = tf.gather(self.images, indices)
        # Scale and crop: a window of 1 / (margin * scale) of each side, anywhere in the image.
        scale = self.generator.uniform([count], 1.0, 1.0 + d.random_scale / 100)
        side = 1.0 / ((1.0 + d.random_crop / 100) * scale)
        top = self.generator.uniform([count]) * (1.0 - side)
        left = self.generator.uniform([count]) * (1.0 - side)
        boxes = tf.stack([top, left, top + side, left + side], axis=1)
        batch = tf.image.crop_and_resize(images, boxes, tf.range(count),
                                         self.extractor.image_size) / 255.0
        if d.flip_left_right:
            mirror = self.generator.uniform([count, 1, 1, 1]) < 0.5
            batch = tf.where(mirror, tf.reverse(batch, axis=[2]), batch)
        if d.random_brightness:
            factor = self.generator.uniform([count, 1, 1, 1], 1.0 - d.random_brightness / 100,
                                            1.0 + d.random_brightness / 100)
            batch = tf.clip_by_value(batch * factor, 0.0, 1.0)
        return batch

    # The batch size stays unknown while tracing: TensorFlow infers shapes through the whole
    # imported graph of a legacy model, and its unused heads hard-code a batch of 1 (MobileNet's
    # `Predictions/Reshape_1` is [1, 1001]), so a known batch above 1 fails there; at run time
    # only the bottleneck's path runs. (One trace also serves every batch size.)
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)], autograph=False)
    def bottlenecks(self, indices: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(features [B, D], labels [B] or [B, L]) of freshly distorted images: training's hook."""
        return self.extractor(self.distorted(indices)), tf.gather(self.labels, indices)

    def __call__(self, indices: np.ndarray) -> Tuple[tf.Tensor, tf.Tensor]:
        return self.bottlenecks(tf.constant(indices, tf.int32))


def training_batches(paths: Sequence[str], labels: np.ndarray, extractor: FeatureExtractor,
                     distortions: RetrainConfig, seed: Optional[int] = None,
                     memory_budget: int = DEFAULT_MEMORY_BUDGET,
                     allow_truncated: bool = False) -> ImageBatches:
    """Decodes the training images once and returns the batch source for training."""
    size = working_size(extractor.image_size, max_zoom(distortions), len(paths), memory_budget)
    logging.info('Training on decoded images kept at %dx%d; distortions: flip_left_right=%s, '
                 'random_crop=%d%%, random_scale=%d%%, random_brightness=%d%%', size[0], size[1],
                 distortions.flip_left_right, distortions.random_crop, distortions.random_scale,
                 distortions.random_brightness)
    return ImageBatches(load_images(paths, size, allow_truncated=allow_truncated), labels,
                        extractor, distortions, seed)
