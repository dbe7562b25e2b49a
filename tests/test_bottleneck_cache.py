"""The classic text cache files: written fast, read back exactly, old files read as they are."""
import numpy as np

from retrain import bottleneck_cache


def test_text_gives_back_every_float32_exactly(tmp_path):
    rng = np.random.default_rng(0)
    features = np.concatenate([
        rng.normal(size=(3, 1001)) * 10,
        np.array([[0.0, -0.0, 1.0, 0.1, 1e-30, -3.4e38, 123456789.0, 4.53949e-05]] * 3)
        .repeat(126, axis=1)[:, :1001]]).astype(np.float32)
    paths = [str(tmp_path / 'c' / f'{i}.jpg_m.txt') for i in range(len(features))]
    bottleneck_cache.write_bottlenecks(paths, features)
    for path, row in zip(paths, features):
        with open(path, encoding='ascii') as f:
            text = f.read()
        assert '\n' not in text and ' ' not in text
        values = np.array([float(v) for v in text.split(',')], np.float32)  # As classic readers.
        np.testing.assert_array_equal(values, row)
        np.testing.assert_array_equal(bottleneck_cache.read_bottleneck(path, 1001), row)
    assert bottleneck_cache.format_values(features[0]) == open(paths[0], encoding='ascii').read()


def test_old_classic_text_is_read_as_it_is(tmp_path):
    values = np.random.default_rng(1).normal(size=50).astype(np.float32)
    path = tmp_path / 'photo.jpg_mobilenet_0.25_224.txt'
    path.write_text(','.join(str(v) for v in values))  # What the classic scripts wrote.
    np.testing.assert_array_equal(bottleneck_cache.read_bottleneck(str(path), 50), values)
    assert bottleneck_cache.read_bottleneck(str(path), 51) is None  # Another model's size.
    path.write_text('0.5,0.25,oops')
    assert bottleneck_cache.read_bottleneck(str(path), 3) is None


def test_subnormal_values_are_written_as_zero():
    # TensorFlow flushes subnormal floats to zero as it computes; no model output holds one.
    assert bottleneck_cache.format_values(np.array([1e-45, 0.5], np.float32)) == '0,0.5'
