"""A generated corpus of the bad and odd files real image folders hold (issue: robustness).

Each entry is (file name, bytes, readable?). Readable odd formats must be used; unreadable files
must be skipped and named. Pillow writes the formats TensorFlow cannot encode.
"""
import io
from typing import List, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def messy_files(colour=(200, 40, 40), seed: int = 0,
                big_side: int = 8000) -> List[Tuple[str, bytes, bool]]:
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(colour, 25, (40, 48, 3)), 0, 255).astype(np.uint8)
    rgb = Image.fromarray(pixels)
    jpeg = _encode(rgb, 'JPEG')
    # Big enough that the cut falls in the scan data (past the headers), as in real photos.
    larger = _encode(rgb.resize((192, 160)), 'JPEG')
    animated = io.BytesIO()
    rgb.save(animated, 'GIF', save_all=True, append_images=[Image.fromarray(255 - pixels)])
    big = np.zeros((big_side, big_side, 3), np.uint8)
    big[...] = colour
    return [
        ('zero_bytes.jpg', b'', False),
        ('truncated.jpg', larger[:len(larger) * 2 // 3], False),
        ('text_file.jpg', b'This is not an image, just text.\n', False),
        ('bmp_inside.jpg', _encode(rgb, 'BMP'), True),
        ('png_inside.jpg', _encode(rgb, 'PNG'), True),
        ('cmyk.jpg', _encode(rgb.convert('CMYK'), 'JPEG'), True),
        ('grayscale.jpg', _encode(rgb.convert('L'), 'JPEG'), True),
        ('rgba.png', _encode(rgb.convert('RGBA'), 'PNG'), True),
        ('sixteen_bit.png', tf.io.encode_png(pixels.astype(np.uint16) * 257).numpy(), True),
        ('animated.gif', animated.getvalue(), True),
        ('progressive.jpg', _encode(rgb, 'JPEG', progressive=True), True),
        ('huge.jpg', tf.io.encode_jpeg(big, quality=50).numpy(), True),
        ('nested/inner.jpg', jpeg, True),
    ]


SYSTEM_FILES = [('.DS_Store', b'\x00\x00\x00\x01Bud1'), ('Thumbs.db', b'\xd0\xcf\x11\xe0')]
