"""Large images for benchmarks and tests: phone-sized photos made from small ones, huge PNGs.

Phone photos are the real photos upscaled (bilinear) to 4032x3024, 12 megapixels, and encoded
at quality 95: the size and decoding work of a phone camera's JPEGs. A huge PNG is one grey
value, written a row at a time: 16000x16000 is under a megabyte on disk and 768 MB decoded,
and making it never holds more than a row. A JPEG may claim any size up to 65535x65535 in its
header whatever its data: one claiming too much is a few hundred bytes.
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


def write_jpeg_claiming(path: str, width: int, height: int) -> None:
    """An 8x8 JPEG whose frame header (SOF0) says it is width x height pixels."""
    data = bytearray(tf.io.encode_jpeg(tf.zeros([8, 8, 3], tf.uint8)).numpy())
    frame = data.index(b'\xff\xc0')  # Marker, length (2), precision (1), height, width.
    data[frame + 5:frame + 9] = struct.pack('>HH', height, width)
    with open(path, 'wb') as f:
        f.write(bytes(data))


def write_upscaled(source: str, target: str, size: Sequence[int] = PHONE_SIZE) -> None:
    """The photo at `source` resized to `size` (height, width), as a quality-95 JPEG."""
    with open(source, 'rb') as f:
        image = tf.io.decode_image(f.read(), channels=3, expand_animations=False)
    resized = tf.cast(tf.round(tf.image.resize(image, size)), tf.uint8)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, 'wb') as f:
        f.write(tf.io.encode_jpeg(resized, quality=95).numpy())
