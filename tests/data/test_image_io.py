"""retrain.data.image_io and image_header: sizes from headers, the pixel budget, and images within
it decoded exactly as before the budget (docs/COMPATIBILITY.md section 4: cache values)."""
import io
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bench.large_images import write_blank_png, write_jpeg_claiming
from retrain.data import image_header, image_io
from retrain.data.image_header import image_size

from conftest import write_image

_PIXELS = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def _encoded(fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_PIXELS).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize('fmt, options', [
    ('JPEG', {}), ('PNG', {}), ('GIF', {}), ('BMP', {}), ('WEBP', {}),
    ('WEBP', {'lossless': True}), ('WEBP', {'exif': b'Exif\0\0x'})])  # VP8, VP8L, VP8X.
def test_image_size_reads_the_header_of_each_format(fmt, options):
    assert image_size(tf.constant(_encoded(fmt, **options))).numpy().tolist() == [37, 53]


def _gif(frames: int, size, canvas=None) -> bytes:
    """An animation of `frames` frames of `size` (width, height); its logical screen set to
    `canvas` (width, height) if given."""
    images = [Image.new('L', size, 255 * (k % 2)) for k in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, 'GIF', save_all=True, append_images=images[1:])
    data = bytearray(buffer.getvalue())
    if canvas:
        data[6:10] = struct.pack('<HH', *canvas)
    return bytes(data)


def test_gif_frames_counts_every_frame_at_the_size_tensorflow_decodes_it():
    """TensorFlow (giflib) decodes every frame, at the largest frame's size whatever the logical
    screen says: what the budget must count. A truncated GIF counts the frames it reaches."""
    assert image_header.gif_frames(_gif(3, (40, 30))) == (3, 30, 40)
    small_screen = _gif(1, (300, 200), canvas=(10, 10))
    assert image_header.gif_frames(small_screen) == (1, 200, 300)
    assert tf.io.decode_gif(small_screen).shape == (1, 200, 300, 3)
    animation = _gif(3, (40, 30))
    assert image_header.gif_frames(animation[:len(animation) * 2 // 3]) == (2, 30, 40)
    assert image_header.gif_frames(_encoded('PNG')) == (0, 0, 0)


def test_the_graph_walk_of_gif_frames_agrees_with_the_python_one():
    """The SavedModel's walk (graph ops) against gif_frames, on whole and truncated GIFs, one with
    extensions (a comment, loops) and one with local colour tables."""
    walk = tf.function(image_header.graph_gif_frames, autograph=False,
                       input_signature=[tf.TensorSpec([], tf.string)])
    animated = io.BytesIO()
    frames = [Image.fromarray(_PIXELS[..., 0]).convert('P', palette=Image.ADAPTIVE, colors=k + 2)
              for k in range(3)]
    frames[0].save(animated, 'GIF', save_all=True, append_images=frames[1:], loop=0,
                   comment=b'a comment')
    for data in (_gif(3, (40, 30)), _gif(1, (300, 200), canvas=(10, 10)), animated.getvalue()):
        for end in (len(data), len(data) * 2 // 3, 20):
            assert walk(tf.constant(data[:end])).numpy().tolist() == list(
                image_header.gif_frames(data[:end])), end


def test_image_size_of_what_is_no_image_is_zero():
    assert image_size(tf.constant(b'not an image')).numpy().tolist() == [0, 0]


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_images_within_the_budget_decode_as_before(tmp_path, fmt):
    """The op used before the budget, bit for bit; so the model sees the same pixels."""
    path = str(tmp_path / f'photo.{fmt}')
    write_image(path, (200, 80, 40), np.random.default_rng(1), shape=(300, 400), fmt=fmt)
    contents = open(path, 'rb').read()
    before = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
    np.testing.assert_array_equal(image_io.decode(tf.constant(contents)), before)
    np.testing.assert_array_equal(image_io.decode_and_resize(tf.constant(contents), (224, 224)),
                                  image_io.resize_to_unit_range(before, (224, 224)))


def test_a_jpeg_over_the_budget_is_decoded_at_the_least_scale_that_fits():
    height, width = 7000, 8000  # 56 MP: over 50 MP, within it at 1/2.
    assert height * width > image_io.PIXEL_BUDGET >= height * width // 4
    contents = tf.io.encode_jpeg(tf.fill([height, width, 3], tf.constant(90, tf.uint8)))
    assert image_io.decode(contents).shape == (height // 2, width // 2, 3)
    assert image_io.describe_decode_error('', contents.numpy()) == ''


def test_scaled_decoding_keeps_twice_the_resized_size_and_leaves_other_images_alone(tmp_path):
    """Caching's scaled decoding: 640x480 for 32x32 is decoded at 1/4 (160x120: 1/8 would leave
    60 rows, under twice 32), close to the classic pixels once resized, and said to be scaled;
    asked not to scale, at full scale; a small JPEG and a PNG are decoded as before, bit for
    bit, and said not to be."""
    for name, shape, fmt in (('large', (480, 640), 'jpeg'), ('small', (60, 70), 'jpeg'),
                             ('png', (480, 640), 'png')):
        write_image(str(tmp_path / name), (90, 160, 40), np.random.default_rng(2), shape=shape,
                    fmt=fmt)
    large, small, png = (tf.constant(open(tmp_path / n, 'rb').read())
                         for n in ('large', 'small', 'png'))
    image, scaled = image_io.decode_noting_scale(large, least_size=(32, 32))
    assert image.shape == (120, 160, 3) and bool(scaled)
    image, scaled = image_io.decode_noting_scale(large, least_size=(32, 32),
                                                 scaling=tf.constant(False))
    np.testing.assert_array_equal(image, image_io.decode(large))
    assert not scaled
    resized = image_io.resize_to_unit_range(
        image_io.decode_noting_scale(large, least_size=(32, 32))[0], (32, 32)).numpy()
    classic = image_io.decode_and_resize(large, (32, 32)).numpy()
    assert 0 < np.abs(resized - classic).mean() < 0.05
    for contents in (small, png):
        image, scaled = image_io.decode_noting_scale(contents, least_size=(32, 32))
        np.testing.assert_array_equal(image, image_io.decode(contents))
        assert not scaled


def test_a_png_over_the_budget_is_refused_by_its_size_without_decoding(tmp_path):
    path = str(tmp_path / 'huge.png')
    write_blank_png(path, 10000, 9000)
    assert os.path.getsize(path) < 200_000
    assert image_io.describe_decode_error(path) == (
        '10000x9000 pixels (257 MB decoded) is over the limit of 50,000,000 pixels')
    with pytest.raises(tf.errors.InvalidArgumentError, match='over the limit'):
        image_io.decode(tf.constant(open(path, 'rb').read()))


def test_a_jpeg_over_the_budget_even_at_an_eighth_is_refused_in_words(tmp_path):
    """The line once was TensorFlow's for an Assert: `Expected 'tf.Tensor(False, ...)' to be
    true. Summarized data: b'image of 60000x60000 pixels ...'`."""
    path = str(tmp_path / 'bomb.jpg')
    write_jpeg_claiming(path, 60000, 60000)
    assert image_io.describe_decode_error(path) == (
        '60000x60000 pixels (10300 MB decoded) is over the limit of 50,000,000 pixels')
    with pytest.raises(tf.errors.InvalidArgumentError, match='over the limit'):
        image_io.decode(tf.constant(open(path, 'rb').read()))


def _bmp(bits: int, width: int = 8, height: int = 2) -> bytes:
    """A BMP with a grey palette (bits <= 8) or grey pixels, rows padded to 4 bytes."""
    palette = b''.join(bytes((v, v, v, 0)) for v in range(1 << bits)) if bits <= 8 else b''
    row = bytes(-(-width * bits // 32) * 4)
    offset = 14 + 40 + len(palette)
    return (b'BM' + struct.pack('<IHHI', offset + len(row) * height, 0, 0, offset) +
            struct.pack('<IiiHHIIiiII', 40, width, height, 1, bits, 0, len(row) * height,
                        2835, 2835, 0, 0) + palette + row * height)


@pytest.mark.parametrize('bits', [1, 4])
def test_a_bmp_of_a_depth_tensorflow_cannot_decode_is_named_so(tmp_path, bits):
    """TensorFlow says 'Number of channels inherent in the image must be 1, 3 or 4, was 0'."""
    path = str(tmp_path / 'mono.bmp')
    with open(path, 'wb') as f:
        f.write(_bmp(bits))
    assert image_io.describe_decode_error(path) == (
        f'a {bits}-bit BMP, which TensorFlow does not decode (it reads 8-, 24- and 32-bit)')
    good = str(tmp_path / 'grey.bmp')
    with open(good, 'wb') as f:
        f.write(_bmp(24))
    assert image_io.describe_decode_error(good) == ''


@pytest.mark.parametrize('cores, in_flight', [(1, 1), (2, 2), (16, 10), (128, 10)])
def test_images_decoded_at_once_grow_with_the_cores_up_to_the_memory_bound(monkeypatch, cores,
                                                                           in_flight):
    monkeypatch.setattr(os, 'cpu_count', lambda: cores)
    assert image_io.max_in_flight() == in_flight
    per_image = image_io.PIXEL_BUDGET * image_io.BYTES_PER_PIXEL
    assert image_io.max_in_flight() * per_image <= image_io.IN_FLIGHT_BYTES
