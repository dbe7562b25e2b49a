"""Decoding and resizing images: one definition shared by caching, export and label_image.

Images are decoded by content (JPEG, PNG, GIF first frame, BMP) to 3 channels, scaled to [0, 1]
and bilinearly resized the way the classic graphs did it (`ResizeBilinear` without half-pixel
centers), so bottlenecks we compute match the classic scripts' cached values and the frozen
graph's `DecodeJpeg/contents` path gives the same pixels as the training pipeline.

Memory is bounded: an image's size is read from its header first (image_header), and one of more
than PIXEL_BUDGET pixels is never decoded at full size. A JPEG is decoded at 1/2, 1/4 or 1/8
scale (libjpeg's DCT scaling), the least that brings it within the budget; other formats, and
JPEGs still over it at 1/8, fail with an error naming the size. Images within the budget are
decoded exactly as before, so their cached values do not change. Parallel decoding holds at most
max_in_flight() images, so it needs at most IN_FLIGHT_BYTES of decoded pixels on any machine.

Asked to (`least_size`: retrain's caching, unless --nofast_jpeg_decoding), a JPEG is also
decoded at the smallest DCT scale that keeps it SCALED_MARGIN times the size it is resized to on
each side: a 12 MP phone photo for a 224x224 model at 1/4, in 33 ms instead of 80 (reading the
compressed data, which scaling does not shorten, is most of the rest). Its pixels are then not
the classic ones, so the caller is told which images were decoded scaled (`decode_noting_scale`).
"""
import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from retrain.common import fileio
from retrain.common.errors import ToolError, error_summary
from retrain.data import image_header
from retrain.data.image_lists import path_bytes

# With --allow_truncated_images, the least part of a truncated JPEG that is still used.
TRUNCATED_FRACTION = 0.1
# The most pixels an image is decoded to: 50 MP (150 MB as 8-bit RGB) keeps camera photos up to
# 8640x5760 as they are, and a 16000x16000 PNG (768 MB decoded) out.
PIXEL_BUDGET = 50_000_000
BYTES_PER_PIXEL = 3  # Decoded to 8-bit RGB.
# The decoded pixels parallel decoding may hold at once, whatever the number of cores.
IN_FLIGHT_BYTES = 1536 * 2**20
_JPEG_RATIOS = (1, 2, 4, 8)  # The scales libjpeg decodes at.
# A JPEG over the budget even at the least of them is refused.
_MOST_JPEG_PIXELS = PIXEL_BUDGET * _JPEG_RATIOS[-1] ** 2
# A JPEG decoded at a smaller scale stays at least this many times the resized size on each side
# (bench/bench_fast_jpeg.py measured the accuracy).
SCALED_MARGIN = 2


def max_in_flight() -> int:
    """How many images to decode at once: one per core, at most IN_FLIGHT_BYTES' worth at
    PIXEL_BUDGET each (10 on a machine of 16 cores or more)."""
    by_memory = IN_FLIGHT_BYTES // (PIXEL_BUDGET * BYTES_PER_PIXEL)
    return max(1, min(os.cpu_count() or 1, by_memory))


def over_budget(height: int, width: int, frames: int = 1) -> str:
    """Why an image of this size (a GIF: its frames, each decoded at this size) is not decoded,
    in a line; '' if it fits the budget."""
    pixels = frames * height * width
    if pixels <= PIXEL_BUDGET:
        return ''
    each = f' in each of {frames} GIF frames' if frames > 1 else ''
    return (f'{width}x{height} pixels{each} ({pixels * BYTES_PER_PIXEL / 2**20:.0f} MB decoded) '
            f'is over the limit of {PIXEL_BUDGET:,} pixels')


def gif_over_budget(contents: bytes) -> str:
    """over_budget for what a GIF decodes to (image_header.gif_frames); '' for other content."""
    frames, height, width = image_header.gif_frames(contents)
    return over_budget(height, width, frames) if frames else ''


def decode(contents: tf.Tensor, allow_truncated: bool = False, gif_frames: str = '') -> tf.Tensor:
    """Encoded bytes (scalar string) -> uint8 [H, W, 3], within PIXEL_BUDGET (see the module
    doc); InvalidArgumentError for an image over it. Works eagerly and in graphs (`gif_frames`:
    see decode_noting_scale).

    With `allow_truncated`, a JPEG cut short is decoded as far as it goes (at least
    TRUNCATED_FRACTION of its rows, the rest left gray) instead of being rejected.
    """
    return decode_noting_scale(contents, allow_truncated, gif_frames=gif_frames)[0]


def decode_noting_scale(contents: tf.Tensor, allow_truncated: bool = False,
                        least_size: Optional[Sequence[int]] = None,
                        scaling: Union[bool, tf.Tensor] = True,
                        gif_frames: str = '') -> Tuple[tf.Tensor, tf.Tensor]:
    """decode's image, and whether it was decoded below full scale (a bool scalar): its pixels
    are then not the classic ones. With `least_size` (height, width), a large JPEG is decoded
    scaled down (module doc) where `scaling` (a bool, or a bool scalar tensor) says so.

    A GIF's frames are held to the budget where this runs eagerly; in a graph, as `gif_frames`
    says: 'python' (a tf.py_function: graphs run in this process, tf.data's), 'ops' (graph ops,
    for a graph to export: about 0.2 s of tracing) or '' (its logical screen only; image_header).
    """
    return tf.cond(tf.io.is_jpeg(contents),
                   lambda: _decode_jpeg(contents, allow_truncated, least_size, scaling),
                   lambda: (_decode_not_jpeg(contents, gif_frames), tf.constant(False)))


def _within(size: tf.Tensor, most: int) -> tf.Operation:
    """An op failing, with the size in its message, for an image of more than `most` pixels."""
    return tf.debugging.Assert(size[0] * size[1] <= most, [tf.strings.format(
        f'image of {{}}x{{}} pixels is over the limit of {PIXEL_BUDGET:,} pixels',
        (size[1], size[0]))])


def _decode_full(contents: tf.Tensor) -> tf.Tensor:
    return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def _decode_not_jpeg(contents: tf.Tensor, gif_frames: str) -> tf.Tensor:
    checks = [_within(image_header.not_jpeg_size(contents), PIXEL_BUDGET)]
    if tf.executing_eagerly():
        reason = gif_over_budget(contents.numpy())
        if reason:
            raise tf.errors.InvalidArgumentError(None, None, reason)
    elif gif_frames == 'python':
        pixels = tf.py_function(lambda data: _gif_pixels(data.numpy()), [contents], tf.int64)
        checks.append(tf.debugging.Assert(pixels <= PIXEL_BUDGET, [
            'GIF frames over the limit of', PIXEL_BUDGET, 'pixels']))
    elif gif_frames == 'ops':
        size = tf.cond(image_header.is_gif(contents),
                       lambda: image_header.graph_gif_frames(contents),
                       lambda: tf.zeros([3], tf.int64))
        checks.append(tf.debugging.Assert(size[0] * size[1] * size[2] <= PIXEL_BUDGET, [
            tf.strings.format(f'GIF of {{}} frames of {{}}x{{}} pixels is over the limit of '
                              f'{PIXEL_BUDGET:,} pixels', (size[0], size[2], size[1]))]))
    with tf.control_dependencies(checks):
        return _decode_full(contents)


def _gif_pixels(data: bytes) -> int:
    frames, height, width = image_header.gif_frames(data)
    return frames * height * width


def _decode_jpeg(contents: tf.Tensor, allow_truncated: bool,
                 least_size: Optional[Sequence[int]],
                 scaling: Union[bool, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """Decoded at the least of _JPEG_RATIOS that brings it within PIXEL_BUDGET (or, with
    `least_size` and `scaling`, the largest that keeps it SCALED_MARGIN times that, if larger);
    at full scale by the very op used before the budget. One control-flow op each: they cost per
    image."""
    size = image_header.jpeg_size(contents)
    pixels = size[0] * size[1]
    scale = sum(tf.cast(pixels > PIXEL_BUDGET * r * r, tf.int32) for r in _JPEG_RATIOS[:-1])
    if least_size is not None:
        towards = sum(tf.cast((size[0] >= SCALED_MARGIN * least_size[0] * r)
                              & (size[1] >= SCALED_MARGIN * least_size[1] * r), tf.int32)
                      for r in _JPEG_RATIOS[1:])
        scale = tf.maximum(scale, tf.where(scaling, towards, 0))

    def at(ratio: int) -> tf.Tensor:
        if ratio == 1 and not allow_truncated:
            return _decode_full(contents)
        return tf.io.decode_jpeg(contents, channels=3, ratio=ratio,
                                 try_recover_truncated=allow_truncated,
                                 acceptable_fraction=TRUNCATED_FRACTION if allow_truncated else 1)

    checks = [_within(size, _MOST_JPEG_PIXELS)]
    if not allow_truncated:  # Which accepts a JPEG whose data ends early.
        checks.append(tf.debugging.Assert(tf.logical_not(too_short(contents, size)), [
            tf.strings.format('JPEG data too short for its {}x{} pixels: damaged, or its '
                              'header lies about its size', (size[1], size[0]))]))
    with tf.control_dependencies(checks):
        return tf.switch_case(scale, [lambda r=r: at(r) for r in _JPEG_RATIOS]), scale > 0


def too_short(contents: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Whether a JPEG has fewer bits than its header's 8x8 blocks: a Huffman-coded JPEG codes
    each block's DC coefficient in at least one bit, so it cannot hold the pixels it claims (a
    3 KB file claiming 20000x20000 decoded, with libjpeg's "Corrupt JPEG data" on stderr, to a
    gray 5000x5000 image that was classified and cached). Arithmetic coding can use less: a file
    holding any arithmetic SOF marker (FF C9-CB, CD-CF) is never too short. Only a file under
    the bound is searched for one, so other JPEGs cost two scalar ops."""
    size = tf.cast(size, tf.int64)
    blocks = ((size[0] + 7) // 8) * ((size[1] + 7) // 8)
    bits = tf.cast(tf.strings.length(contents), tf.int64) * 8

    def arithmetic() -> tf.Tensor:
        data = tf.io.decode_raw(contents, tf.uint8)
        marker, code = data[:-1], data[1:]
        return tf.reduce_any((marker == 0xFF) & (((code >= 0xC9) & (code <= 0xCB))
                                                 | ((code >= 0xCD) & (code <= 0xCF))))

    return tf.cond(bits >= blocks, lambda: tf.constant(False),
                   lambda: tf.logical_not(arithmetic()))


def resize_to_unit_range(image: tf.Tensor, size: Sequence[int]) -> tf.Tensor:
    """uint8 [H, W, 3] or [N, H, W, 3] -> float32 of the same rank at `size`, values in [0, 1].

    The uint8 image is resized directly (ResizeBilinear reads uint8 and computes in float), so a
    huge photo never exists as a float copy: 8000x8000 stays 192 MB instead of 768 MB.
    """
    batched = image.shape.rank == 4
    if not batched:
        image = tf.expand_dims(image, 0)
    resized = tf.raw_ops.ResizeBilinear(images=image, size=tf.constant(list(size), tf.int32),
                                        align_corners=False, half_pixel_centers=False)
    resized = resized * (1.0 / 255.0)
    return resized if batched else resized[0]


def decode_and_resize(contents: tf.Tensor, size: Sequence[int], allow_truncated: bool = False,
                      gif_frames: str = '') -> tf.Tensor:
    return resize_to_unit_range(decode(contents, allow_truncated, gif_frames), size)


def image_batches(paths: Sequence[str], image_size: Tuple[int, int], batch_size: int,
                  allow_truncated: bool = False, ordered: bool = False,
                  scaled_jpegs: Sequence[bool] = ()) -> tf.data.Dataset:
    """(indices, images, scaled) batches of the decodable files of `paths`, in roughly that order
    (exactly, when `ordered`: a slow file then holds up the ones after it).

    Reading, decoding and resizing run on tf.data's own threads, a few batches ahead of the
    consumer, so they overlap the model. Files that fail to decode are dropped from the stream;
    the caller finds them as the missing indices. `allow_truncated`: see decode. Where
    `scaled_jpegs` (one bool per path) is true, a large JPEG is decoded scaled down towards
    `image_size` (module doc); `scaled` says which images were decoded below full scale.

    tf.data's autotuning is off and decoding runs on max_in_flight() threads: with it on, tearing
    the pipeline down after the last batch waited for its tuning thread to wake up, which held
    about half of the runs for 6 to 8 s (3,670 photos: 21 s instead of 12 s). AutoGraph is off
    too (our traced code writes its conditions as tf.cond itself): converting `load` took 0.37 s
    of every run's start (bench/bench_startup.py).
    """
    @tf.autograph.experimental.do_not_convert
    def load(index, path, scaling):
        image, scaled = decode_noting_scale(tf.io.read_file(path), allow_truncated,
                                            image_size if any(scaled_jpegs) else None, scaling,
                                            gif_frames='python')
        return index, resize_to_unit_range(image, image_size), scaled

    options = tf.data.Options()
    options.autotune.enabled = False
    names = tf.constant([path_bytes(p) for p in paths], tf.string)  # Typed even when empty.
    scaling = tf.constant(list(scaled_jpegs) or [False] * len(paths), tf.bool, [len(paths)])
    return (tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), names, scaling))
            .map(load, num_parallel_calls=max_in_flight(), deterministic=ordered)
            .ignore_errors()
            .batch(batch_size)
            .prefetch(2)
            .with_options(options))


def describe_decode_error(path: str, contents: Optional[bytes] = None,
                          allow_truncated: bool = False) -> str:
    """Why `path` cannot be used as an image, in a few words; '' if it decodes after all."""
    try:
        if contents is None:
            contents = tf.io.gfile.GFile(path_bytes(path), 'rb').read()
    except (tf.errors.OpError, OSError) as e:
        return f'cannot read file ({fileio.failure_reason(e, path)})'
    if not contents:
        return 'empty file'
    try:
        height, width = image_header.image_size(tf.constant(contents)).numpy()
        is_jpeg = bool(tf.io.is_jpeg(contents))
        most = _MOST_JPEG_PIXELS if is_jpeg else PIXEL_BUDGET
        if int(height) * int(width) > most:  # decode's Assert would say it in TF's words.
            return over_budget(int(height), int(width))
        reason = gif_over_budget(contents)
        if reason:
            return reason
        if is_jpeg and not allow_truncated and bool(
                too_short(tf.constant(contents), tf.constant([height, width]))):
            return (f'{len(contents):,} bytes of JPEG data cannot hold its {width}x{height} '
                    'pixels: damaged, or its header lies about its size')
        decode(tf.constant(contents), allow_truncated)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
        return _plain_words(error_summary(e), contents)
    return ''


def _plain_words(summary: str, contents: bytes) -> str:
    """TensorFlow's words for a decoding failure, in the user's where they mislead."""
    if summary.startswith('jpeg::Uncompress failed'):  # No crop window was asked for.
        return 'truncated or damaged JPEG data'
    if contents[:2] == b'BM' and summary.startswith('Number of channels inherent'):
        bits = int.from_bytes(contents[28:30], 'little')  # The info header's bit count.
        return f'a {bits}-bit BMP, which TensorFlow does not decode (it reads 8-, 24- and 32-bit)'
    return summary


def load_image(path: str, size: Tuple[int, int]) -> np.ndarray:
    """Reads one image file eagerly -> float32 [H, W, 3] in [0, 1]; ToolError if unusable."""
    try:
        contents = tf.io.gfile.GFile(path_bytes(path), 'rb').read()
        return decode_and_resize(tf.constant(contents), size).numpy()
    except (tf.errors.OpError, OSError):
        raise ToolError(f'cannot use image {path}: {describe_decode_error(path)}') from None
