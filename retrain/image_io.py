"""Decoding and resizing images: one definition shared by caching, export and label_image.

Images are decoded by content (JPEG, PNG, GIF first frame, BMP) to 3 channels, scaled to [0, 1]
and bilinearly resized the way the classic graphs did it (`ResizeBilinear` without half-pixel
centers), so bottlenecks we compute match the classic scripts' cached values and the frozen
graph's `DecodeJpeg/contents` path gives the same pixels as the training pipeline.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from retrain.errors import RetrainError


def decode(contents: tf.Tensor) -> tf.Tensor:
    """Encoded bytes (scalar string) -> uint8 [H, W, 3]. Works eagerly and in graphs."""
    return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def resize_to_unit_range(image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """uint8 [H, W, 3] or [N, H, W, 3] -> float32 of the same rank at `size`, values in [0, 1]."""
    batched = image.shape.rank == 4
    floats = tf.image.convert_image_dtype(image, tf.float32)
    if not batched:
        floats = tf.expand_dims(floats, 0)
    resized = tf.raw_ops.ResizeBilinear(images=floats, size=tf.constant(list(size), tf.int32),
                                        align_corners=False, half_pixel_centers=False)
    return resized if batched else resized[0]


def decode_and_resize(contents: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    return resize_to_unit_range(decode(contents), size)


def describe_decode_error(path: str, contents: Optional[bytes] = None) -> str:
    """Why `path` cannot be used as an image, in a few words; '' if it decodes after all."""
    try:
        if contents is None:
            contents = tf.io.gfile.GFile(path, 'rb').read()
    except (tf.errors.OpError, OSError) as e:
        return f'cannot read file ({error_summary(e)})'
    if not contents:
        return 'empty file'
    try:
        decode(tf.constant(contents))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        return error_summary(e)
    return ''


def load_image(path: str, size: Tuple[int, int]) -> np.ndarray:
    """Reads one image file eagerly -> float32 [H, W, 3] in [0, 1]; RetrainError if unusable."""
    try:
        contents = tf.io.gfile.GFile(path, 'rb').read()
        return decode_and_resize(tf.constant(contents), size).numpy()
    except (tf.errors.OpError, OSError):
        raise RetrainError(f'cannot use image {path}: {describe_decode_error(path)}') from None


def error_summary(error: Exception) -> str:
    message = getattr(error, 'message', None) or str(error)
    message = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return message.split(' [Op:')[0].strip()
