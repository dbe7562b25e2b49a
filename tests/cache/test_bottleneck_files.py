"""The classic text cache files: written fast, read back exactly, old files read as they are."""
import dataclasses
import functools
import glob
import hashlib
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from retrain.cache import bottleneck_files
from retrain.common.errors import ToolError
from retrain.data import image_lists
from retrain.data.examples import Example
from retrain.features.extractors import FeatureExtractor
from retrain.tasks.single_label import examples_of

from conftest import make_image_folder, mean_colour_extractor, retrain_args, run_module, write_image


def test_text_gives_back_every_float32_exactly(tmp_path):
    rng = np.random.default_rng(0)
    features = np.concatenate([
        rng.normal(size=(3, 1001)) * 10,
        np.array([[0.0, -0.0, 1.0, 0.1, 1e-30, -3.4e38, 123456789.0, 4.53949e-05]] * 3)
        .repeat(126, axis=1)[:, :1001]]).astype(np.float32)
    paths = [str(tmp_path / 'c' / f'{i}.jpg_m.txt') for i in range(len(features))]
    bottleneck_files.write_bottlenecks(paths, features)
    for path, row in zip(paths, features):
        with open(path, encoding='ascii') as f:
            text = f.read()
        assert '\n' not in text and ' ' not in text
        values = np.array([float(v) for v in text.split(',')], np.float32)  # As classic readers.
        np.testing.assert_array_equal(values, row)
        np.testing.assert_array_equal(bottleneck_files.read_bottleneck(path, 1001), row)
    assert bottleneck_files.format_values(features[0]) == open(paths[0], encoding='ascii').read()


def test_old_classic_text_is_read_as_it_is(tmp_path):
    values = np.random.default_rng(1).normal(size=50).astype(np.float32)
    path = tmp_path / 'photo.jpg_mobilenet_0.25_224.txt'
    path.write_text(','.join(str(v) for v in values))  # What the classic scripts wrote.
    np.testing.assert_array_equal(bottleneck_files.read_bottleneck(str(path), 50), values)
    assert bottleneck_files.read_bottleneck(str(path), 51) is None  # Another model's size.
    path.write_text('0.5,0.25,oops')
    assert bottleneck_files.read_bottleneck(str(path), 3) is None


def test_subnormal_values_are_written_as_zero():
    # TensorFlow flushes subnormal floats to zero as it computes; no model output holds one.
    assert bottleneck_files.format_values(np.array([1e-45, 0.5], np.float32)) == '0,0.5'


@pytest.mark.parametrize('damage', ['nan', 'inf', '-inf'])
def test_a_non_finite_value_makes_a_cache_file_damaged(tmp_path, damage):
    path = tmp_path / 'photo.jpg_m.txt'
    path.write_text(f'0.5,{damage},0.25')
    assert bottleneck_files.read_bottleneck(str(path), 3) is None


def test_a_nan_in_a_cache_file_is_recomputed_with_the_classic_warning(tiny_module, image_dir,
                                                                      tmp_path):
    """Once: `autodetected range of [nan, nan]`, or with no summaries "Cross entropy = nan"."""
    args = retrain_args(image_dir, tiny_module, str(tmp_path), 20, '--random_seed', '3',
                        '--summaries_dir', '')
    first = run_module('retrain', *args)
    assert first.returncode == 0, first.stderr[-2000:]
    damaged = sorted(glob.glob(str(tmp_path / 'bn' / 'green' / '*.txt')))[3]
    with open(damaged, encoding='utf-8') as f:
        values = f.read().split(',')
    with open(damaged, 'w', encoding='utf-8') as f:
        f.write(','.join(['nan'] + values[1:]))
    second = run_module('retrain', *args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert 'Traceback' not in second.stderr
    assert not re.search(r'\bnan\b', second.stderr.replace(damaged, ''))  # No NaN trained on.
    assert re.search(rf'^W [-0-9]+ [0-9:.]+: Invalid float found, recreating bottleneck '
                     rf'{re.escape(damaged)}$', second.stderr, re.M)
    assert '89 bottlenecks cached in' in second.stderr and '1 to compute' in second.stderr
    final = re.compile(r'Final test accuracy = .*')
    assert final.search(second.stderr).group(0) == final.search(first.stderr).group(0)
    assert bottleneck_files.read_bottleneck(damaged, 19) is not None


def _colour_or_nan(images: tf.Tensor) -> tf.Tensor:
    """Mean colour, but nan for nearly white images: a model that fails on some inputs."""
    colour = tf.reduce_mean(images, axis=[1, 2])
    white = tf.reduce_all(colour > 0.8, axis=1, keepdims=True)
    return tf.where(white, tf.fill(tf.shape(colour), np.nan), colour)


def test_images_the_model_gives_non_finite_values_for_are_skipped(tmp_path, caplog):
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=5)
    white = [os.path.join(image_dir, 'red', f'white_{i}.jpg') for i in range(2)]
    for path in white:
        write_image(path, (240, 240, 240), np.random.default_rng(0))
    extractor = FeatureExtractor(function=_colour_or_nan, image_size=(8, 8), bottleneck_size=3,
                                 cache_suffix='_m', description='colour or nan')
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    cache = str(tmp_path / 'bn')
    data, skipped = bottleneck_files.load_or_compute(image_dir, examples_of(classes), cache,
                                                     extractor)
    assert len(skipped) == 2
    for category in image_lists.CATEGORIES:
        assert np.isfinite(data.features[category]).all()
        assert not set(white) & set(data.paths[category])
    for path in white:
        assert f'Skipping {path}: the model gives non-finite values for it' in caplog.text
        assert not os.path.exists(os.path.join(cache, 'red', os.path.basename(path) + '_m.txt'))


def test_a_cache_file_that_cannot_be_read_is_one_line_naming_it(tmp_path):
    """A folder where a cache file should be: neither recomputed over (the write would fail, or
    replace what is not ours) nor a traceback, but one line naming the file and the reason."""
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=5)
    extractor = mean_colour_extractor()
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    name = sorted(os.listdir(os.path.join(image_dir, 'red')))[0]
    blocked = os.path.join(str(tmp_path / 'bn'), 'red', name + '_m.txt')
    os.makedirs(blocked)
    with pytest.raises(ToolError) as error:
        bottleneck_files.load_or_compute(image_dir, examples_of(classes), str(tmp_path / 'bn'),
                                         extractor)
    assert str(error.value) == f'cannot read the cached bottleneck {blocked}: Is a directory'
    assert os.listdir(blocked) == []


def test_long_names_get_a_short_cache_name_and_classic_ones_are_still_read(tmp_path):
    """Names past the limit are cached as `<start>~<hash><suffix>.txt`; a classic script's file
    of up to 255 bytes, too long to be written with a temporary name, is still read as it is."""
    def red(name: str) -> str:
        return os.path.join('red', name)
    suffix = '_https~tfhub.dev~google~imagenet~mobilenet_v2_100_224~feature_vector~4'
    short = 'a' * (bottleneck_files.MAX_NAME_BYTES - len(suffix) - len('.jpg.txt')) + '.jpg'
    assert bottleneck_files.bottleneck_path('bn', red(short), suffix) == os.path.join(
        'bn', 'red', short + suffix + '.txt')
    for name in (short[:-4] + 'b.jpg', 'é' * 120 + '.jpg', os.fsdecode(b'caf\xe9.jpg')):
        path = bottleneck_files.bottleneck_path('bn', red(name), suffix)
        base = os.path.basename(path)
        assert re.fullmatch(r'.+~[0-9a-f]{16}' + re.escape(suffix) + r'\.txt', base), base
        assert len(base.encode('utf-8')) <= bottleneck_files.MAX_NAME_BYTES
        assert path == bottleneck_files.bottleneck_path('bn', red(name), suffix)  # Deterministic.
    assert os.path.basename(bottleneck_files.bottleneck_path(
        'bn', red(os.fsdecode(b'caf\xe9.jpg')), '_m')).startswith('caf_.jpg~')
    other = bottleneck_files.bottleneck_path('bn', red(os.fsdecode(b'caf\xe8.jpg')), '_m')
    assert other != bottleneck_files.bottleneck_path('bn', red(os.fsdecode(b'caf\xe9.jpg')), '_m')
    assert os.path.dirname(bottleneck_files.bottleneck_path(
        'bn', os.path.join(os.fsdecode(b'r\xf6d'), 'a.jpg'), '_m')) == os.path.join(
        'bn', 'r_d~' + hashlib.sha1(b'r\xf6d').hexdigest()[:16])

    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=3)
    long = 'b' * (250 - len(suffix) - len('.jpg.txt')) + '.jpg'  # A classic cache name: 250 bytes.
    write_image(os.path.join(image_dir, 'red', long), (200, 40, 40), np.random.default_rng(0))
    cache = str(tmp_path / 'bn')
    classic = os.path.join(cache, 'red', long + suffix + '.txt')
    os.makedirs(os.path.dirname(classic))
    with open(classic, 'w', encoding='utf-8') as f:  # As the classic scripts wrote it.
        f.write('0.5,0.25,0.125')
    extractor = FeatureExtractor(function=_colour_or_nan, image_size=(8, 8), bottleneck_size=3,
                                 cache_suffix=suffix, description='colour')
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    data, _ = bottleneck_files.load_or_compute(image_dir, examples_of(classes), cache, extractor)
    image = os.path.join(image_dir, 'red', long)
    category = next(c for c in image_lists.CATEGORIES if image in data.paths[c])
    row = data.features[category][data.paths[category].index(image)]
    assert row.tolist() == [0.5, 0.25, 0.125]


def _by_image(data: bottleneck_files.Bottlenecks) -> dict:
    return {path: row for split in data.paths
            for path, row in zip(data.paths[split], data.features[split])}


def _five_per_class(tmp_path):
    """(image folder of five images a class, its examples)."""
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=5)
    return image_dir, examples_of(image_lists.create_image_lists(image_dir, 10, 10))


def test_a_photo_replaced_under_its_name_is_computed_again(tmp_path, caplog):
    """The classic scripts kept the old photo's values (its text file is unchanged); the index
    knows the size of the image each row came from."""
    caplog.set_level('INFO', logger='absl')
    image_dir, examples = _five_per_class(tmp_path)
    cache = str(tmp_path / 'bn')
    load = functools.partial(bottleneck_files.load_or_compute, image_dir, examples, cache,
                             mean_colour_extractor())
    before = _by_image(load()[0])
    photo = sorted(glob.glob(os.path.join(image_dir, 'red', '*')))[0]
    cached = os.path.join(cache, 'red', os.path.basename(photo) + '_m.txt')
    write_image(photo, (0, 0, 250), np.random.default_rng(0), shape=(41, 48))
    caplog.clear()
    after = _by_image(load()[0])
    assert ('1 image(s) changed since their bottlenecks were cached (replaced under the same '
            f'name, e.g. {photo}): computing them again') in caplog.text
    assert '(14 from its index), 1 to compute' in caplog.text
    assert after[photo][2] > 0.9 > before[photo][2]  # Blue now.
    np.testing.assert_array_equal(bottleneck_files.read_bottleneck(cached, 3), after[photo])
    assert all(np.array_equal(after[p], before[p]) for p in after if p != photo)
    caplog.clear()
    load()
    assert '(15 from its index), 0 to compute' in caplog.text


def test_large_jpegs_are_cached_scaled_down_only_where_no_classic_file_is(tmp_path, caplog):
    """docs/COMPATIBILITY.md section 4. For an 8x8 input the 48x40 test images are large: at 1/2
    scale they are still twice the input. Classic files are read as they are, and a damaged one
    gets classic values again; images without one are decoded scaled down and cached under the
    name of scaled values, also in the index."""
    caplog.set_level('INFO', logger='absl')
    image_dir, examples = _five_per_class(tmp_path)
    cache = str(tmp_path / 'bn')
    classic = _by_image(bottleneck_files.load_or_compute(image_dir, examples, cache,
                                                         mean_colour_extractor())[0])
    for text in glob.glob(os.path.join(cache, 'red', '*_m.txt')):
        os.remove(text)
    green = os.path.join(cache, 'green', os.listdir(os.path.join(cache, 'green'))[0])
    with open(green, 'w') as f:
        f.write('damaged')
    scaling = dataclasses.replace(mean_colour_extractor(), scaled_jpegs=True)
    caplog.clear()
    values = _by_image(bottleneck_files.load_or_compute(image_dir, examples, cache, scaling)[0])
    assert '(9 from its index), 6 to compute' in caplog.text
    assert '5 large JPEG(s) were decoded scaled down' in caplog.text
    red = os.path.join(image_dir, 'red')
    for photo in values:
        if photo.startswith(red):
            assert os.path.isfile(os.path.join(cache, 'red', os.path.basename(photo)
                                               + '_m_scaled_jpegs.txt'))
            assert not np.array_equal(values[photo], classic[photo])
            np.testing.assert_allclose(values[photo], classic[photo], atol=0.05)
        else:
            np.testing.assert_array_equal(values[photo], classic[photo])
    assert not glob.glob(os.path.join(cache, 'red', '*_m.txt'))
    assert len(glob.glob(os.path.join(cache, '*', '*_scaled_jpegs.txt'))) == 5
    caplog.clear()
    again = _by_image(bottleneck_files.load_or_compute(image_dir, examples, cache, scaling)[0])
    assert '(15 from its index), 0 to compute' in caplog.text
    assert all(np.array_equal(again[p], values[p]) for p in values)


def test_a_photo_replaced_is_computed_again_from_a_copied_cache(tmp_path):
    """A copy of the cache (cp -r, a zip, a CI cache) gives its text files new times; the index's
    image sizes still tell the replaced photo, and the rewritten index must not bless its old
    values."""
    image_dir, examples = _five_per_class(tmp_path)
    original = str(tmp_path / 'bn')
    bottleneck_files.load_or_compute(image_dir, examples, original, mean_colour_extractor())
    photo = sorted(glob.glob(os.path.join(image_dir, 'red', '*')))[0]
    write_image(photo, (0, 0, 250), np.random.default_rng(0), shape=(41, 48))
    cache = str(tmp_path / 'copy')
    shutil.copytree(original, cache, copy_function=shutil.copyfile)  # New times, as cp -r.
    for _ in range(2):
        after = _by_image(bottleneck_files.load_or_compute(image_dir, examples, cache,
                                                           mean_colour_extractor())[0])
        assert after[photo][2] > 0.9  # Blue now, in this run and the next.
    cached = os.path.join(cache, 'red', os.path.basename(photo) + '_m.txt')
    np.testing.assert_array_equal(bottleneck_files.read_bottleneck(cached, 3), after[photo])


def test_a_fresh_copy_of_the_images_reuses_the_cache(tmp_path, caplog):
    """New times on every image (a checkout, a copy beside a cache restored on CI) are not
    changes."""
    caplog.set_level('INFO', logger='absl')
    image_dir, examples = _five_per_class(tmp_path)
    cache = str(tmp_path / 'bn')
    bottleneck_files.load_or_compute(image_dir, examples, cache, mean_colour_extractor())
    for image in glob.glob(os.path.join(image_dir, '*', '*')):
        shutil.copyfile(image, image + '.new')
        os.replace(image + '.new', image)
        os.utime(image, ns=(2**62, 2**62))
    caplog.clear()
    bottleneck_files.load_or_compute(image_dir, examples, cache, mean_colour_extractor())
    assert '(15 from its index), 0 to compute' in caplog.text


def test_an_image_listed_twice_is_computed_and_skipped_once(tmp_path, caplog):
    """make_image_classifier's training and validation splits share some files."""
    caplog.set_level('INFO', logger='absl')
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=4)
    bad = os.path.join(image_dir, 'red', 'bad.jpg')
    with open(bad, 'wb') as f:
        f.write(b'not an image')
    examples = [Example(e.location, 'training', e.label)
                for e in examples_of(image_lists.create_image_lists(image_dir, 0, 0))]
    shared = [Example(e.location, 'validation', e.label) for e in examples[::2]]
    listed = examples + shared
    data, skipped = bottleneck_files.load_or_compute(image_dir, listed, str(tmp_path / 'bn'),
                                                     mean_colour_extractor())
    distinct = len(examples)
    assert f'0 bottlenecks cached in {tmp_path / "bn"} (0 from its index), {distinct} to compute' \
        in caplog.text
    assert [s.path for s in skipped] == [bad]
    assert caplog.text.count(f'Skipping {bad}') == 1
    values = dict(zip(data.paths['training'], data.features['training']))
    for path, value in zip(data.paths['validation'], data.features['validation']):
        np.testing.assert_array_equal(value, values[path])
    assert len(data.paths['validation']) == sum(e.location != os.path.join('red', 'bad.jpg')
                                                for e in shared)


def test_a_value_beyond_float32_is_damage_without_numpy_warnings(recwarn):
    """1e39 became inf with a RuntimeWarning and its source line among the log lines."""
    assert bottleneck_files.parse_values(','.join(['1e39'] * 1280), 1280) is None
    assert bottleneck_files.parse_values(','.join(['0.5'] * 1280), 1280) is not None
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
