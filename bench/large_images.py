"""Large images for benchmarks and tests: phone-sized photos made from small ones, huge PNGs.

Phone photos are the real photos upscaled (bilinear) to 4032x3024, 12 megapixels, with sensor
grain added (Gaussian noise, by default 3 levels of 255 in brightness and 1 in each colour) and
encoded at quality 92: about 2.5 MB each, the size and decoding work of a phone camera's JPEGs
(without grain they are half that, smooth, and decode faster than real photos).

A huge PNG is one grey value, written a row at a time: 16000x16000 is under a megabyte on disk
and 768 MB decoded, and making it never holds more than a row. A GIF animation is small on disk
whatever its frames decode to. A JPEG may claim any size up to
65535x65535 in its header whatever its data: one claiming too much is a few hundred bytes.
"""
import os
import struct
import zlib
from typing import Sequence

import tensorflow as tf

PHONE_SIZE = (3024, 4032)  # (height, width): a 12-megapixel phone camera in landscape.


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def write_blank_png(path: str, width: int, height: int, grey: int = 128) -> None:
    """An 8-bit greyscale PNG of one value (decoded as RGB: width * height * 3 bytes)."""
    row = b'\0' + bytes([grey]) * width  # Filter byte 0 (none), then the pixels.
    compressor = zlib.compressobj(9)
    data = b''.join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', data)
                + _chunk(b'IEND', b''))


def write_animation(path: str, frames: int, side: int) -> None:
    """A GIF of `frames` frames of side x side, alternating two colours (so none is merged):
    about 2 KB a megapixel, and frames * side * side pixels decoded. Needs Pillow (the test
    extra)."""
    from PIL import Image
    images = [Image.new('L', (side, side), 255 * (k % 2)) for k in range(frames)]
    images[0].save(path, 'GIF', save_all=True, append_images=images[1:])


def write_jpeg_claiming(path: str, width: int, height: int) -> None:
    """An 8x8 JPEG whose frame header (SOF0) says it is width x height pixels."""
    data = bytearray(tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8)).numpy())
    frame = data.index(b'\xff\xc0')  # Marker, length (2), precision (1), height, width.
    data[frame + 5:frame + 9] = struct.pack('>HH', height, width)
    with open(path, 'wb') as f:
        f.write(bytes(data))


PHONE_GRAIN = 3.0


def write_upscaled(source: str, target: str, size: Sequence[int] = PHONE_SIZE,
                   grain: float = PHONE_GRAIN) -> None:
    """The photo at `source` resized to `size` (height, width), with `grain` (module doc; the
    same for a given photo on every run), as a quality-92 JPEG."""
    with open(source, 'rb') as f:
        contents = f.read()
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    resized = tf.image.resize(image, size)
    if grain:
        seed = tf.constant([len(contents), sum(contents[-64:])], tf.int64)
        brightness = tf.random.stateless_normal(list(size) + [1], seed, stddev=grain)
        colour = tf.random.stateless_normal(list(size) + [3], seed + 1, stddev=grain / 3)
        resized += brightness + colour
    pixels = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, 'wb') as f:
        f.write(tf.io.encode_jpeg(pixels, quality=92).numpy())
