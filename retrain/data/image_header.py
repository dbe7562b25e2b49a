"""An image's size from its header, before anything is decoded: TensorFlow ops, for graphs too.

Decoding a 16000x16000 PNG (0.7 MB on disk) allocates 768 MB; the size in its header lets the
decoders refuse it, or decode a JPEG scaled down, first. JPEG sizes come from
tf.image.extract_jpeg_shape (which reads the markers up to the frame header); PNG (IHDR), GIF
(logical screen), BMP (info header) and WebP (VP8, VP8L and VP8X chunks) keep theirs at fixed
places in the first 30 bytes. Other content gives (0, 0): the decoder rejects it anyway.

A GIF's logical screen does not bound what TensorFlow decodes: its decoder (giflib) decodes
every frame, into frames x the largest frame's size. `gif_frames` walks the blocks in Python
(where a decode runs eagerly, or in the caching pipeline through tf.py_function), and
`graph_gif_frames` in graph ops, for the SavedModel, which holds no Python: a tf.while_loop that
takes about 0.2 s to trace, too much for every decoding graph (the frozen graph checks a GIF's
logical screen only).
"""
from typing import List, Tuple

import tensorflow as tf

_HEAD = 32  # Bytes read; files shorter than this are padded with zeros.


def _field(at: int, count: int, big_endian: bool = False, divide: int = 1, modulo: int = 1 << 32,
           add: int = 0, signed: bool = False) -> Tuple[List[int], int, int, int, bool]:
    """A number in the header: the weight of each byte, then (x // divide) % modulo + add."""
    weights = [0] * _HEAD
    for k in range(count):
        weights[at + k] = 1 << (8 * (count - 1 - k if big_endian else k))
    return weights, divide, modulo, add, signed


def _magic(*parts: Tuple[int, bytes]) -> List[int]:
    """The header's bytes that must match (-1: any)."""
    expected = [-1] * _HEAD
    for at, value in parts:
        expected[at:at + len(value)] = list(value)
    return expected


_WEBP = ((0, b'RIFF'), (8, b'WEBP'))
_VP8L = dict(divide=1 << 14, modulo=1 << 14, add=1)
# Each format: its magic bytes, its height field, its width field.
_FORMATS = [
    (_magic((0, b'\x89PNG')), _field(20, 4, True), _field(16, 4, True)),
    (_magic((0, b'GIF8')), _field(8, 2), _field(6, 2)),
    (_magic((0, b'BM')), _field(22, 4, signed=True), _field(18, 4)),  # Negative: top-down rows.
    (_magic(*_WEBP, (12, b'VP8 ')), _field(28, 2, modulo=1 << 14), _field(26, 2, modulo=1 << 14)),
    (_magic(*_WEBP, (12, b'VP8L')), _field(21, 4, **_VP8L), _field(21, 4, modulo=1 << 14, add=1)),
    (_magic(*_WEBP, (12, b'VP8X')), _field(27, 3, add=1), _field(24, 3, add=1)),
]


def _head(contents: tf.Tensor) -> tf.Tensor:
    """The first _HEAD bytes of `contents` as int64 [_HEAD], zero-padded."""
    padded = tf.strings.join([tf.strings.substr(contents, 0, _HEAD), b'\0' * _HEAD])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, _HEAD), tf.uint8), tf.int64)


def not_jpeg_size(contents: tf.Tensor) -> tf.Tensor:
    """[height, width] of the first of _FORMATS whose magic matches; (0, 0) if none does.

    All formats at once, in a few ops on [formats, 2, _HEAD] constants: decoding runs this for
    every image, and a hundred scalar ops instead cost small photos about a fifth of their
    decoding throughput."""
    head = _head(contents)
    expected = tf.constant([magic for magic, _, _ in _FORMATS], tf.int64)
    matches = tf.reduce_all((expected < 0) | tf.equal(expected, head), axis=1)
    fields = [[height, width] for _, height, width in _FORMATS]
    weights, divide, modulo, add, signed = (
        tf.constant([[field[i] for field in pair] for pair in fields], tf.int64)
        for i in range(5))
    values = tf.reduce_sum(weights * head, axis=2)
    values = tf.where((signed > 0) & (values >= 1 << 31), (1 << 32) - values, values)
    values = values // divide % modulo + add
    return tf.where(tf.reduce_any(matches), tf.gather(values, tf.argmax(matches)),
                    tf.zeros([2], tf.int64))


def jpeg_size(contents: tf.Tensor) -> tf.Tensor:
    """[height, width] from a JPEG's frame header; an error if it has none."""
    return tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)


def image_size(contents: tf.Tensor) -> tf.Tensor:
    """Encoded bytes (scalar string) -> int64 [height, width] from the header; (0, 0) when the
    format is unknown. Reads no pixels. A JPEG without a readable frame header is an error."""
    return tf.cond(tf.io.is_jpeg(contents), lambda: jpeg_size(contents),
                   lambda: not_jpeg_size(contents))


# A GIF's blocks (GIF89a specification): after the 6-byte signature, the logical screen
# descriptor (7 bytes, its global colour table after it), then records until the trailer (0x3B):
# an extension (0x21, a label byte, data sub-blocks) or an image (0x2C, a 9-byte descriptor, its
# local colour table, the LZW minimum code size byte, data sub-blocks). Sub-blocks are a length
# byte and that many bytes, the last of length 0.
_EXTENSION, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_SCREEN_END = 13
# Sub-blocks of one length are skipped together, up to this many a step (encoders write 255-byte
# ones): a few steps a frame.
_RUN = 1024
# Sub-blocks of mixed lengths (which no encoder we know writes: each step of the loop costs about
# 80 us), after _SLOW steps of a chain over fewer than 4 sub-blocks each, are followed this many
# bytes at a time, by pointer doubling: about 2 ms a window.
_WINDOW = 1 << 16
_SLOW = 8


def gif_frames(data: bytes) -> Tuple[int, int, int]:
    """(frames, height, width) of a GIF as TensorFlow decodes it: its frames, and the largest of
    their sizes and the logical screen; (0, 0, 0) for other content. Blocks are walked as far
    as they are well formed (a truncated file counts the frames it holds)."""
    if len(data) < _SCREEN_END or data[:3] != b'GIF':  # What giflib checks.
        return 0, 0, 0
    width, height = _short(data, 6), _short(data, 8)
    at = _SCREEN_END + _colour_table(data[10])
    frames = 0
    while at < len(data) and data[at] != _TRAILER:
        if data[at] == _EXTENSION:  # Its label, then sub-blocks.
            at = _after_sub_blocks(data, at + 2)
        elif data[at] == _IMAGE and at + 10 <= len(data):  # A whole descriptor.
            frames += 1
            width, height = max(width, _short(data, at + 5)), max(height, _short(data, at + 7))
            # The local colour table, the LZW code size, then the image data's sub-blocks.
            at = _after_sub_blocks(data, at + 11 + _colour_table(data[at + 9]))
        else:
            break
    return frames, height, width


def _short(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 2], 'little')


def _colour_table(flags: int) -> int:
    """Bytes of the colour table a descriptor's flags announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _after_sub_blocks(data: bytes, at: int) -> int:
    """Where a chain of sub-blocks (a length byte, then that many bytes; 0 ends it) ends."""
    while at < len(data):
        length = data[at]
        at += 1 + length
        if not length:
            return at
    return len(data)


def is_gif(contents: tf.Tensor) -> tf.Tensor:
    """Whether TensorFlow decodes `contents` as a GIF (giflib checks the first 3 bytes)."""
    return tf.equal(tf.strings.substr(contents, 0, 3), b'GIF')


def _colour_table_tensor(flags: tf.Tensor) -> tf.Tensor:
    """The bytes of the colour table a descriptor's flags announce."""
    sizes = tf.constant([3 << (bits + 1) for bits in range(8)], tf.int64)  # 2 to 256 colours.
    return tf.where(flags >= 0x80, tf.gather(sizes, flags % 8), tf.constant(0, tf.int64))


def graph_gif_frames(contents: tf.Tensor) -> tf.Tensor:
    """int64 [frames, height, width] as gif_frames gives them, in graph ops (a tf.while_loop)
    for graphs that hold no Python: the SavedModel's. Tracing it takes about 0.2 s."""
    data = tf.io.decode_raw(contents, tf.uint8)
    end = tf.cast(tf.size(data), tf.int64)
    last = tf.maximum(end - 1, 0)
    head = _head(contents)

    def at(positions: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.gather(data, tf.minimum(positions, last)), tf.int64)

    def step(pos, in_chain, frames, height, width, slow):
        length = at(pos)
        # In a sub-block chain: skip the run of sub-blocks of this length (one, if 0: its end).
        stride = length + 1
        ahead = pos + stride * tf.range(1, _RUN + 1, dtype=tf.int64)
        differs = (ahead >= end) | tf.not_equal(at(ahead), length)
        run = tf.where(tf.reduce_any(differs), tf.argmax(differs) + 1, _RUN)
        chain_pos = pos + tf.where(length > 0, stride * run, 1)
        # Short runs not at the chain's end: mixed lengths, followed a window at a time.
        short = in_chain & (length > 0) & (run < 4) & (chain_pos < end) & (at(chain_pos) > 0)
        slow = tf.where(short, slow + 1, tf.where(in_chain, tf.zeros_like(slow), slow))
        chain_pos = tf.cond(slow >= _SLOW, lambda: _across_window(at, end, pos),
                            lambda: chain_pos)
        # At a record: an extension, an image (whose descriptor must be whole), or the end.
        descriptor = at(pos + tf.range(5, 10, dtype=tf.int64))
        image = tf.equal(length, _IMAGE) & (pos + 9 < end)
        extension = tf.equal(length, _EXTENSION)
        record_pos = tf.where(image, pos + 11 + _colour_table_tensor(descriptor[4]),
                              tf.where(extension, pos + 2, end))
        new_image = tf.logical_not(in_chain) & image
        return (tf.where(in_chain, chain_pos, record_pos),
                tf.where(in_chain, length > 0, image | extension),
                frames + tf.cast(new_image, tf.int64),
                tf.where(new_image, tf.maximum(height, descriptor[2] + 256 * descriptor[3]),
                         height),
                tf.where(new_image, tf.maximum(width, descriptor[0] + 256 * descriptor[1]), width),
                slow)

    start = _SCREEN_END + _colour_table_tensor(head[10])
    zero = tf.constant(0, tf.int64)
    _, _, frames, height, width, _ = tf.while_loop(
        lambda pos, *_: pos < end, step,
        (start, tf.constant(False), zero, head[8] + 256 * head[9], head[6] + 256 * head[7], zero))
    return tf.stack([frames, height, width])


def _across_window(at, end: tf.Tensor, pos: tf.Tensor) -> tf.Tensor:
    """Where the sub-block chain at `pos` ends (its 0 length byte) or first leaves the next
    _WINDOW bytes: each byte's next sub-block if a chain reached it, jumps doubled until they end
    or leave (a chain within the window has fewer than _WINDOW steps)."""
    offsets = tf.range(_WINDOW, dtype=tf.int64)
    lengths = at(pos + offsets)
    jumps = tf.where((lengths == 0) | (pos + offsets >= end), offsets, offsets + 1 + lengths)
    for _ in range(_WINDOW.bit_length() - 1):
        jumps = tf.where(jumps < _WINDOW, tf.gather(jumps, tf.minimum(jumps, _WINDOW - 1)),
                         jumps)
    return pos + jumps[0]
