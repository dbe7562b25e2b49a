"""Distortions: classic semantics on batches of decoded images, and training runs that use them."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.features.hub_module import load_hub_module
from retrain.train import distortions
from retrain.train.distortions import ImageBatches

from conftest import fixed_split, retrain_args, run_module

SIZE = 32


@pytest.fixture(scope='module')
def extractor(tiny_module):
    return load_hub_module(tiny_module)


def _ramp_images(count: int, size: int = SIZE) -> np.ndarray:
    """Channel 0 rises from 0 to 255 left to right, channel 1 top to bottom, channel 2 is 128."""
    ramp = np.linspace(0, 255, size)
    image = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                      np.full((size, size), 128.0)], axis=-1)
    return np.repeat(image.round().astype(np.uint8)[None], count, axis=0)


def _distort(extractor, config: RetrainConfig, images: np.ndarray, seed=0) -> np.ndarray:
    batches = ImageBatches(images, np.zeros(len(images), np.int64), extractor, config, seed)
    return batches.distorted(tf.range(len(images))).numpy()


def test_flip_only_mirrors_about_half_and_changes_nothing_else(extractor):
    images = _ramp_images(64)
    out = _distort(extractor, RetrainConfig(flip_left_right=True), images)
    plain = images[0] / 255.0
    mirrored = [np.allclose(o, plain[:, ::-1], atol=1e-5) for o in out]
    unchanged = [np.allclose(o, plain, atol=1e-5) for o in out]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 16 <= sum(mirrored) <= 48


def test_brightness_multiplies_each_image_by_one_factor_in_range(extractor):
    images = _ramp_images(32)
    out = _distort(extractor, RetrainConfig(random_brightness=20), images)
    plain = images[0] / 255.0
    unclipped = (plain > 0.1) & (plain < 0.8)
    factors = [o[unclipped] / plain[unclipped] for o in out]
    for f in factors:
        np.testing.assert_allclose(f, f.mean(), rtol=1e-4)
    means = np.array([f.mean() for f in factors])
    assert means.min() >= 0.8 - 1e-5 and means.max() <= 1.2 + 1e-5
    assert means.std() > 0.03
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_crop_and_scale_cut_windows_of_the_classic_size(extractor):
    """A window of 1 / (margin * scale) of each side, as the classic precrop-then-crop gave."""
    config = RetrainConfig(random_crop=50, random_scale=20)
    size = distortions.working_size((SIZE, SIZE), distortions.max_zoom(config), 16)
    assert size == (58, 58)  # ceil(32 * 1.5 * 1.2): the largest pre-crop image.
    out = _distort(extractor, config, _ramp_images(16, size[0]))
    spans_x = out[:, 0, -1, 0] - out[:, 0, 0, 0]
    spans_y = out[:, -1, 0, 1] - out[:, 0, 0, 1]
    np.testing.assert_allclose(spans_x, spans_y, atol=0.02)  # Square windows.
    assert spans_x.min() >= 1 / (1.5 * 1.2) - 0.02 and spans_x.max() <= 1 / 1.5 + 0.02
    assert spans_x.std() > 0.005  # The scale varies from image to image.
    offsets = out[:, 0, 0, 0]
    assert offsets.min() >= -1e-6 and np.all(offsets + spans_x <= 1 + 0.02)
    assert offsets.std() > 0.02  # And so does the place of the window.


def test_same_seed_same_distortions_other_seed_others(extractor):
    config = RetrainConfig(flip_left_right=True, random_crop=10, random_scale=10,
                           random_brightness=10)
    images = _ramp_images(8, 36)
    first, again = _distort(extractor, config, images, 5), _distort(extractor, config, images, 5)
    assert np.array_equal(first, again)
    assert not np.allclose(first, _distort(extractor, config, images, 6))


def test_batches_feed_the_extractor_with_labels(extractor):
    labels = np.array([2, 0, 1, 1])
    batches = ImageBatches(_ramp_images(4), labels, extractor,
                           RetrainConfig(flip_left_right=True), 1)
    features, batch_labels = batches(np.array([3, 0, 0]))
    assert batch_labels.numpy().tolist() == [1, 2, 2]
    plain = _ramp_images(1)[0] / 255.0  # Every image is this one, so each row is its bottleneck
    either = extractor(tf.constant(np.stack([plain, plain[:, ::-1]]), tf.float32)).numpy()
    for row in features.numpy():  # or its mirror's: flipping is the only distortion.
        assert np.allclose(row, either[0], atol=1e-5) or np.allclose(row, either[1], atol=1e-5)
    assert not np.allclose(either[0], either[1], atol=1e-3)  # The two can be told apart.


def test_working_size_shrinks_to_the_memory_budget():
    assert distortions.working_size((224, 224), 1.21, 10) == (272, 272)
    height, width = distortions.working_size((224, 224), 1.21, 1000, memory_budget=50 * 2 ** 20)
    assert height == width and 1000 * height * width * 3 <= 50 * 2 ** 20
    assert height > 100


@pytest.mark.parametrize('flags, message', [
    ({'random_crop': -5}, '--random_crop must be at least 0'),
    ({'random_brightness': 100}, '--random_brightness must be below 100'),
])
def test_bad_percentages_are_one_line_errors(flags, message):
    with pytest.raises(ToolError, match=message):
        RetrainConfig(**flags)


def test_unreadable_image_is_named(tmp_path):
    good = tmp_path / 'good.png'
    good.write_bytes(tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy())
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not an image')
    with pytest.raises(ToolError, match=r'cannot use image .*bad\.jpg'):
        distortions.load_images([str(good), str(bad)], (8, 8))


def test_distorted_training_run(tmp_path, image_dir, tiny_module):
    """Distorted batches train the layer; the cache holds only undistorted bottlenecks."""
    cwd, images = fixed_split(image_dir)  # The accuracy threshold holds for this split.
    result = run_module('retrain', *retrain_args(
        images, tiny_module, str(tmp_path), 40, '--summaries_dir', '',
        '--train_batch_size', '20', '--flip_left_right', '--random_crop', '20',
        '--random_scale', '20', '--random_brightness', '15', '--random_seed', '0'), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Decoding training images' in result.stderr
    assert 'Step 39: Train accuracy' in result.stderr
    final = float(result.stderr.split('Final test accuracy = ')[1].split('%')[0])
    assert final >= 90.0
    cached = glob.glob(os.path.join(str(tmp_path / 'bn'), '*', '*.txt'))
    assert len(cached) == 90  # One per image, none for distorted copies.
    assert os.path.getsize(str(tmp_path / 'graph.pb')) > 0
