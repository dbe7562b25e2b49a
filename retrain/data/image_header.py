"""An image's size from its header, before anything is decoded: TensorFlow ops, for graphs too.

Decoding a 16000x16000 PNG (0.7 MB on disk) allocates 768 MB; the size in its header lets the
decoders refuse it, or decode a JPEG scaled down, first. JPEG sizes come from
tf.image.extract_jpeg_shape (which reads the markers up to the frame header); PNG (IHDR), GIF
(logical screen), BMP (info header) and WebP (VP8, VP8L and VP8X chunks) keep theirs at fixed
places in the first 30 bytes. Other content gives (0, 0): the decoder rejects it anyway.
"""
import tensorflow as tf

_HEAD = 32  # Bytes read; files shorter than this are padded with zeros.


def _head(contents: tf.Tensor) -> tf.Tensor:
    """The first _HEAD bytes of `contents` as int64 [_HEAD], zero-padded."""
    padded = tf.strings.join([tf.strings.substr(contents, 0, _HEAD), b'\0' * _HEAD])
    return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, _HEAD), tf.uint8), tf.int64)


def _starts(head: tf.Tensor, at: int, magic: bytes) -> tf.Tensor:
    return tf.reduce_all(tf.equal(head[at:at + len(magic)], list(magic)))


def _little(head: tf.Tensor, at: int, count: int) -> tf.Tensor:
    return sum(head[at + k] * (1 << (8 * k)) for k in range(count))


def _big(head: tf.Tensor, at: int, count: int) -> tf.Tensor:
    return sum(head[at + k] * (1 << (8 * (count - 1 - k))) for k in range(count))


def _signed32(value: tf.Tensor) -> tf.Tensor:
    """A BMP height: negative for rows stored top-down; its size either way."""
    return tf.abs(tf.where(value >= 1 << 31, value - (1 << 32), value))


def _not_jpeg_size(contents: tf.Tensor) -> tf.Tensor:
    head = _head(contents)
    webp = _starts(head, 0, b'RIFF') & _starts(head, 8, b'WEBP')
    vp8l_bits = _little(head, 21, 4)
    known = [  # (is this format, [height, width])
        (_starts(head, 0, b'\x89PNG'), [_big(head, 20, 4), _big(head, 16, 4)]),
        (_starts(head, 0, b'GIF8'), [_little(head, 8, 2), _little(head, 6, 2)]),
        (_starts(head, 0, b'BM'), [_signed32(_little(head, 22, 4)), _little(head, 18, 4)]),
        (webp & _starts(head, 12, b'VP8 '),
         [_little(head, 28, 2) % (1 << 14), _little(head, 26, 2) % (1 << 14)]),
        (webp & _starts(head, 12, b'VP8L'),
         [1 + (vp8l_bits // (1 << 14)) % (1 << 14), 1 + vp8l_bits % (1 << 14)]),
        (webp & _starts(head, 12, b'VP8X'), [1 + _little(head, 27, 3), 1 + _little(head, 24, 3)]),
    ]
    size = tf.zeros([2], tf.int64)
    for matches, dimensions in reversed(known):
        size = tf.where(matches, tf.stack(dimensions), size)
    return size


def image_size(contents: tf.Tensor) -> tf.Tensor:
    """Encoded bytes (scalar string) -> int64 [height, width] from the header; (0, 0) when the
    format is unknown. Reads no pixels. A JPEG without a readable frame header is an error."""
    return tf.cond(tf.io.is_jpeg(contents),
                   lambda: tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64),
                   lambda: _not_jpeg_size(contents))
