"""`python -m bench.bench` runs end to end on tiny inputs and writes its numbers (not timed)."""
import collections
import json
import os

import numpy as np
from PIL import Image

from conftest import run_module


def test_bench_writes_its_table_and_json(tmp_path, image_dir, tiny_module):
    results_path = str(tmp_path / 'results' / 'bench.json')
    process = run_module('bench.bench', '--image_dir', image_dir, '--tfhub_module', tiny_module,
                         '--training_steps', '30', '--seconds', '0.2', '--batch_size', '16',
                         '--skip', 'runs,label_image', '--repeats', '2', '--json', results_path,
                         '--work_dir', str(tmp_path))
    assert process.returncode == 0, process.stderr[-2000:]
    results = json.load(open(results_path, encoding='utf-8'))
    assert results['images'] == 90 and results['batch_size'] == 16
    for key in ('model_images_per_s', 'decode_images_per_s', 'bound_images_per_s',
                'caching_images_per_s', 'training_steps_per_s', 'peak_rss_mb'):
        assert results[key] > 0, key
    assert results['bound_images_per_s'] <= min(results['model_images_per_s'],
                                                 results['decode_images_per_s'])
    assert [len(results['runs'][k]) for k in ('decode', 'model', 'caching')] == [2, 2, 2]
    assert not {'cold_run_s', 'warm_run_s', 'label_image_one_image_s'} & set(results)
    assert 'end-to-end caching (fresh cache)' in process.stdout
    assert os.listdir(str(tmp_path)) == ['results']  # The scratch cache was cleaned up.


def test_bench_needs_exactly_one_model(tmp_path, image_dir):
    process = run_module('bench.bench', '--image_dir', image_dir)
    assert process.returncode == 2
    assert 'exactly one of --tfhub_module and --architecture' in process.stderr


def test_make_multilabel_set_tints_each_photo_once_into_its_class_and_colour(tmp_path, image_dir):
    out = tmp_path / 'tinted'
    result = run_module('bench.make_multilabel_set', image_dir, str(out), '--layout', 'tinted')
    assert result.returncode == 0, result.stderr
    photos = {name: [f for f in os.listdir(os.path.join(image_dir, name)) if f.endswith('.jpg')]
              for name in os.listdir(image_dir)}
    assert result.stdout.startswith(f'{sum(map(len, photos.values()))} images written')
    folders = collections.defaultdict(set)
    for folder in os.listdir(out):
        for name in os.listdir(out / folder):
            folders[name].add(folder)
    pairs = collections.Counter()
    for name, labels in folders.items():
        flower, colour = name.split('_')[:2]
        assert labels == {flower, colour}
        pairs[flower, colour] += 1
        red, green, blue = np.asarray(Image.open(out / colour / name), np.float64).mean(axis=(0, 1))
        assert {'red': red > max(green, blue), 'green': green > max(red, blue),
                'blue': blue > max(red, green), 'yellow': min(red, green) > blue}[colour], name
    assert collections.Counter(name.split('_')[0] for name in folders) == {
        flower: len(names) for flower, names in photos.items()}
    for flower, names in photos.items():  # The colours in turn: as many of each, give or take one.
        counts = [pairs[flower, colour] for colour in ('red', 'green', 'blue', 'yellow')]
        assert sum(counts) == len(names) and max(counts) - min(counts) <= 1
    refused = run_module('bench.make_multilabel_set', image_dir, str(tmp_path / 'x'),
                         '--layout', 'tinted', '--colours', 'red,teal')
    assert refused.returncode == 2 and 'unknown colours teal' in refused.stderr


def test_patterned_set_labels_each_photo_with_its_colour_and_its_pattern(tmp_path, image_dir):
    out = tmp_path / 'patterned'
    result = run_module('bench.make_multilabel_set', image_dir, str(out), '--layout', 'patterned')
    assert result.returncode == 0, result.stderr
    folders = collections.defaultdict(set)
    for folder in os.listdir(out):
        for name in os.listdir(out / folder):
            folders[name].add(folder)
    assert len(folders) == sum(f.endswith('.jpg') for name in os.listdir(image_dir)
                               for f in os.listdir(os.path.join(image_dir, name)))
    white = collections.defaultdict(list)
    for name, labels in folders.items():
        colour, pattern = name.split('_')[:2]
        assert labels == {colour, pattern}
        pixels = np.asarray(Image.open(out / colour / name), np.float64)
        white[colour, pattern].append(pixels.min(axis=2).mean())  # White raises every channel.
    pairs = collections.Counter(tuple(name.split('_')[:2]) for name in folders)
    assert len(pairs) == 16 and max(pairs.values()) - min(pairs.values()) <= 1  # In turn.
    for colour in ('red', 'green', 'blue', 'yellow'):
        solid = np.mean(white[colour, 'solid'])
        for pattern in ('striped', 'checked', 'dotted'):
            assert np.mean(white[colour, pattern]) > solid + 10, (colour, pattern)


def test_multilabel_quality_bench_prints_each_step_count_and_the_converged_reference(
        tmp_path, image_dir, tiny_module):
    made = run_module('bench.make_multilabel_set', image_dir, str(tmp_path / 'set'),
                      '--layout', 'patterned')
    assert made.returncode == 0, made.stderr
    result = run_module('bench.bench_multilabel_quality', '--image_dir', str(tmp_path / 'set'),
                        '--bottleneck_dir', str(tmp_path / 'bn'), '--tfhub_module', tiny_module,
                        '--steps', '10,40', '--label_thresholds')
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line[:34].strip(): line[34:].split() for line in result.stdout.splitlines()
            if 'steps' in line[:34] or line.startswith('converged')}
    assert set(rows) == {'10 steps, rate 0.01', '10 steps, --label_thresholds',
                         '40 steps, rate 0.01', '40 steps, --label_thresholds',
                         'converged linear reference'}
    for name, (mean_ap, f1, exact) in rows.items():
        assert 0 <= float(mean_ap) <= 1 and 0 <= float(f1) <= 1, name
        assert 0 <= float(exact.rstrip('%')) <= 100, name
    assert '8 labels' in result.stdout and 'reference L2 weight' in result.stdout


def test_the_reference_layer_reaches_a_zero_gradient():
    from bench.bench_multilabel_quality import _fit_label, _with_bias
    rng = np.random.default_rng(0)
    x = _with_bias(rng.normal(size=(60, 5)))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(np.float64)
    w = _fit_label(x, y, 1e-2)
    p = 1 / (1 + np.exp(-(x @ w)))
    penalty = np.append(np.full(5, 1e-2), 0.0)
    assert np.abs(x.T @ (p - y) / len(y) + penalty * w).max() < 1e-8


def test_multilabel_quality_bench_refuses_a_missing_folder_in_one_line(tmp_path):
    result = run_module('bench.bench_multilabel_quality', '--image_dir', str(tmp_path / 'none'),
                        '--bottleneck_dir', str(tmp_path / 'bn'))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"error: image directory not found: '{tmp_path / 'none'}'")
    assert 'Traceback' not in result.stderr


def test_stamp_set_lays_each_photo_stamp_on_grey_and_leaves_drawings_and_plants_out(tmp_path):
    from PIL import Image

    from bench import make_stamp_set
    stamps = tmp_path / 'stamps'
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[4:12, 4:12] = (200, 30, 30, 255)  # An opaque red object; the rest transparent.
    for name in ('animals/insects/bee.png', 'animals/insects/cartoon/bee.png',
                 'plants/flowers/rose.png'):
        os.makedirs(os.path.dirname(stamps / name), exist_ok=True)
        Image.fromarray(pixels, 'RGBA').save(stamps / name)
    assert make_stamp_set.write_set(str(stamps), str(tmp_path / 'set')) == 1
    written = [os.path.relpath(os.path.join(folder, name), tmp_path / 'set')
               for folder, _, names in os.walk(tmp_path / 'set') for name in names]
    assert written == [os.path.join('animals', 'bee.jpg')]
    photo = np.asarray(Image.open(tmp_path / 'set' / 'animals' / 'bee.jpg'), np.int16)
    assert np.abs(photo[0, 0] - 128).max() < 8 and np.abs(photo[8, 8] - (200, 30, 30)).max() < 24
