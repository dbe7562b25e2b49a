"""`python -m retrain --multi_label` end to end, and label_image / compat on what it wrote."""
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from compat import classifier
from retrain.data import multilabel_lists
from retrain.data.image_lists import CATEGORIES

import graph_builders as gb
from conftest import CLASS_COLOURS, label_image_blocks, retrain_args, run_module, write_image
from multilabel_images import PAIRS, make_pair_folders, write_two_colour_image


@pytest.fixture(scope='module')
def pair_folders(tmp_path_factory) -> str:
    return make_pair_folders(str(tmp_path_factory.mktemp('pairs') / 'images'), per_pair=15)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_module, pair_folders):
    """(output folder, completed process) of a seeded 150-step multi-label run; the folder also
    holds its SavedModel (saved_model/) and TFLite model (model.tflite)."""
    out = str(tmp_path_factory.mktemp('multilabel_run'))
    result = run_module('retrain', *retrain_args(pair_folders, tiny_module, out, 150,
                                                 '--multi_label', '--random_seed', '0',
                                                 '--learning_rate', '0.2',
                                                 '--saved_model_dir',
                                                 os.path.join(out, 'saved_model'),
                                                 '--tflite_output_file',
                                                 os.path.join(out, 'model.tflite')))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_run_logs_the_classic_lines_and_the_multilabel_metrics(trained, pair_folders):
    out, result = trained
    tests = len(multilabel_lists.gather(pair_folders, 10, 10).images['testing'])
    log = result.stderr
    assert re.search(r': Step 149: Train accuracy = \d+\.\d%$', log, re.M)
    assert re.search(r': Step 149: Cross entropy = \d+\.\d+$', log, re.M)
    assert re.search(r': Step 149: Validation accuracy = \d+\.\d% \(N=100\)$', log, re.M)
    for line in (rf'Final test accuracy = \d+\.\d% \(N={tests}\)',
                 rf'Final test mAP = [01]\.\d{{3}} \(N={tests}\)',
                 rf'Final test macro F1 = [01]\.\d{{3}} \(N={tests}\)',
                 rf'Final test exact match = \d+\.\d% \(N={tests}\)'):
        assert re.search(rf'^I [-0-9]+ [0-9:.]+: {line}$', log, re.M), line
    assert float(re.search(r'Final test mAP = (\S+)', log).group(1)) > 0.9
    with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
        assert f.read() == 'blue\ngreen\nred\n'


def test_each_image_is_cached_once_from_its_first_folder(trained, pair_folders):
    out, _ = trained
    cached = sorted(os.path.relpath(os.path.join(folder, name), os.path.join(out, 'bn'))
                    for folder, _, names in os.walk(os.path.join(out, 'bn'))
                    for name in names if name.endswith('.txt'))
    found = multilabel_lists.gather(pair_folders, 10, 10)
    expected = sorted(os.path.join(image.folder, image.relative) for c in CATEGORIES
                      for image in found.images[c])
    assert [path.split('.jpg')[0] + '.jpg' for path in cached] == expected
    assert len(expected) == 15 * len(PAIRS)


def test_graph_ends_in_a_sigmoid_and_keeps_every_entry_point(trained, pair_folders):
    out, _ = trained
    graph_def = tf.compat.v1.GraphDef()
    with open(os.path.join(out, 'graph.pb'), 'rb') as f:
        graph_def.ParseFromString(f.read())
    nodes = {node.name: node.op for node in graph_def.node}
    assert nodes['final_result'] == 'Sigmoid'
    for name in ('DecodeJpeg/contents', 'Placeholder', 'Mul', 'input',
                 'input_1/BottleneckInputPlaceholder'):
        assert name in nodes
    image = os.path.join(pair_folders, 'red', 'red_blue_000.jpg')
    scores = gb.classic_run(os.path.join(out, 'graph.pb'), image, 'DecodeJpeg/contents:0')
    assert scores.shape == (1, 3) and ((scores > 0) & (scores < 1)).all()
    assert abs(scores.sum() - 1) > 0.05  # Independent scores, not a distribution.



def test_label_image_prints_the_labels_at_or_above_the_threshold(trained, pair_folders):
    out, _ = trained
    graph, labels = os.path.join(out, 'graph.pb'), os.path.join(out, 'labels.txt')
    images = [os.path.join(pair_folders, first, f'{first}_{second}_00{i}.jpg')
              for first, second in PAIRS for i in range(3)]
    every = run_module('label_image', '--graph', graph, '--labels', labels, '--json', *images)
    assert every.returncode == 0, every.stderr
    scores = {item['image']: {p['label']: p['score'] for p in item['predictions']}
              for item in json.loads(every.stdout)}
    assert all(len(s) == 3 for s in scores.values())
    default = {}  # Printed with the default threshold (0.5) and top_k (5).
    for threshold, top_k in ((None, None), ('0.2', '5'), ('0.2', '1')):
        options = ['--threshold', threshold, '--top_k', top_k] if threshold else []
        result = run_module('label_image', '--graph', graph, '--labels', labels, *options,
                            *images)
        assert result.returncode == 0, result.stderr
        blocks = label_image_blocks(result.stdout)
        if threshold is None:
            default = blocks
        threshold, top_k = threshold or '0.5', top_k or '5'
        for path, printed in blocks.items():
            expected = sorted(((label, score) for label, score in scores[path].items()
                               if score >= float(threshold)), key=lambda p: -p[1])[:int(top_k)]
            assert [label for label, _ in printed] == [label for label, _ in expected]
            assert np.allclose([s for _, s in printed], [s for _, s in expected], atol=1e-5)
    # The model learnt the pairs: at 0.5 each image gets both its colours.
    right = [sorted(label for label, _ in printed) == sorted(os.path.basename(path).split('_')[:2])
             for path, printed in default.items()]
    assert np.mean(right) > 0.8


def test_compat_inspect_says_multi_label(trained):
    out, _ = trained
    result = run_module('compat', 'inspect', os.path.join(out, 'graph.pb'))
    assert result.returncode == 0, result.stderr
    assert re.search(r'^output: final_result:0 \(float32 \[N, 3\]\), multi-label', result.stdout,
                     re.M)


def test_misclassified_test_images_show_both_label_sets(tmp_path, tiny_module, pair_folders):
    result = run_module('retrain', *retrain_args(pair_folders, tiny_module, str(tmp_path), 1,
                                                 '--multi_label', '--random_seed', '0',
                                                 '--learning_rate', '0.0001',
                                                 '--print_misclassified_test_images'))
    assert result.returncode == 0, result.stderr[-3000:]
    listed = result.stderr.split('=== MISCLASSIFIED TEST IMAGES ===')[1]
    lines = re.findall(r': +(\S+\.jpg)  predicted: (.*)  true: (.*)$', listed, re.M)
    tests = multilabel_lists.gather(pair_folders, 10, 10).images['testing']
    assert lines and len(lines) <= len(tests)
    for path, predicted, truth in lines:
        assert truth == ', '.join(sorted(os.path.basename(path).split('_')[:2]))
        assert predicted != truth


def test_distortions_and_fine_tuning_train_a_multi_label_layer(tmp_path, tiny_module,
                                                               pair_folders):
    """The fork kept retrain.py's distortion flags: its command lines run unchanged; and the
    module can be fine-tuned under the sigmoid loss (on the distorted images)."""
    result = run_module('retrain', *retrain_args(pair_folders, tiny_module, str(tmp_path), 60,
                                                 '--multi_label', '--random_seed', '0',
                                                 '--learning_rate', '2.0', '--flip_left_right',
                                                 '--random_brightness', '10',
                                                 '--fine_tune_steps', '11',
                                                 '--fine_tune_learning_rate', '0.1'))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert 'distortions: flip_left_right=True, random_crop=0%, random_scale=0%, ' \
           'random_brightness=10%' in log
    assert re.search(r': Fine-tune step 10: Train accuracy = \d+\.\d%$', log, re.M)
    assert re.search(r'^I [-0-9]+ [0-9:.]+: Fine-tuned validation accuracy = \d+\.\d% \(N=\d+\)$',
                     log, re.M)
    assert float(re.search(r'Final test mAP = (\S+)', log).group(1)) > 0.9


def test_label_files_and_a_labels_table_train_from_the_command_line(tmp_path, tiny_module):
    rng = np.random.default_rng(5)
    images, labels_dir = tmp_path / 'images', tmp_path / 'image_labels_dir'
    labels_dir.mkdir()
    rows = ['path,labels']
    for first, second in PAIRS:
        for i in range(8):
            name = f'{first}_{second}_{i}.jpg'
            write_two_colour_image(str(images / 'multi-label' / name), first, second, rng)
            (labels_dir / (name + '.txt')).write_text(f'{first}\n{second}\n', encoding='utf-8')
            rows.append(f'multi-label/{name},{first};{second}')
    (tmp_path / 'labels.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    for form, value in (('--image_labels_dir', str(labels_dir)),
                        ('--image_labels_file', str(tmp_path / 'labels.csv'))):
        out = str(tmp_path / 'out' / form.strip('-'))  # Not the label files' folder.
        result = run_module('retrain', *retrain_args(str(images), tiny_module, out, 20,
                                                     '--multi_label', form, value))
        assert result.returncode == 0, result.stderr[-3000:]
        assert 'Found 3 labels in' in result.stderr
        with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
            assert f.read() == 'blue\ngreen\nred\n'


def test_label_files_without_multi_label_are_one_line_errors(tmp_path, tiny_module,
                                                             pair_folders):
    """(A table without --multi_label is a single-label table: tests/test_data_layouts_cli.py.)"""
    result = run_module('retrain', *retrain_args(pair_folders, tiny_module, str(tmp_path), 5,
                                                 '--image_labels_dir', str(tmp_path)))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'retrain: error: --image_labels_dir needs --multi_label')
    assert not os.path.exists(os.path.join(str(tmp_path), 'graph.pb'))


@pytest.mark.parametrize('model', ['saved_model', 'model.tflite'])
def test_our_saved_model_and_tflite_are_multi_label_as_the_frozen_graph_is(trained, pair_folders,
                                                                          model):
    """label_image, compat inspect and compat's classifier see a --multi_label run's SavedModel
    and TFLite model as multi-label (threshold output), as they see its frozen graph."""
    out, _ = trained
    model, labels = os.path.join(out, model), os.path.join(out, 'labels.txt')
    assert classifier.load(model).multi_label
    inspected = run_module('compat', 'inspect', model)
    assert inspected.returncode == 0, inspected.stderr
    assert re.search(r'^  output \S+ \(3 classes, multi-label: a sigmoid score per label\)$',
                     inspected.stdout, re.M), inspected.stdout
    images = [os.path.join(pair_folders, first, f'{first}_{second}_00{i}.jpg')
              for first, second in PAIRS for i in range(3)]
    graph = classifier.load(os.path.join(out, 'graph.pb'))
    with open(labels, encoding='utf-8') as f:
        names = f.read().split()
    result = run_module('label_image', '--graph', model, '--labels', labels, *images)
    assert result.returncode == 0, result.stderr
    printed = label_image_blocks(result.stdout)
    assert printed.keys() == set(images)
    for path, block in printed.items():  # What the frozen graph scores, thresholded at 0.5.
        with open(path, 'rb') as f:
            scores = graph.classify([f.read()])[0]
        expected = [i for i in np.argsort(-scores, kind='stable') if scores[i] >= 0.5]
        assert [label for label, _ in block] == [names[i] for i in expected]
        assert np.allclose([s for _, s in block], scores[expected], atol=1e-5)
    assert any(len(block) < 3 for block in printed.values())  # The threshold left some out.


def test_photos_sharing_a_name_in_class_folders_are_all_trained_on(tmp_path, tiny_module):
    """Cameras name files IMG_0001.jpg in every folder: the run once used 6 images labelled with
    every colour instead of the 18 photos, each labelled by its folder, without a word."""
    rng = np.random.default_rng(7)
    images = tmp_path / 'images'
    for colour in ('red', 'green', 'blue'):
        for i in range(6):
            write_image(str(images / colour / f'IMG_{i:04d}.jpg'), CLASS_COLOURS[colour], rng)
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(str(images), tiny_module, out, 5,
                                                 '--multi_label'))
    assert result.returncode == 0, result.stderr[-3000:]
    counts = re.search(r'Found 3 labels in \S+: (\d+) training, (\d+) validation, (\d+) testing '
                       r'images', result.stderr)
    assert sum(int(n) for n in counts.groups()) == 18
    assert result.stderr.count('6 file name(s) name different photos in different class folders '
                               '(IMG_0000.jpg, IMG_0001.jpg, IMG_0002.jpg, ...)') == 1
    cached = [name for _, _, names in os.walk(os.path.join(out, 'bn')) for name in names
              if name.endswith('.txt')]
    assert len(cached) == 18


def test_a_label_holding_a_line_break_is_a_usage_error_before_any_work(tmp_path, tiny_module,
                                                                      pair_folders):
    """A quoted label with a line break once wrote a labels file of 5 lines for 4 labels (exit 0),
    which label_image then refused."""
    table = tmp_path / 'labels.csv'
    table.write_text('red/red_green_000.jpg,red;green\nred/red_blue_000.jpg,"red\nblue"\n',
                     encoding='utf-8')
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(pair_folders, tiny_module, out, 5,
                                                 '--multi_label', '--image_labels_file',
                                                 str(table)))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"retrain: error: {table} line 2: the label 'red\\nblue' holds a line break; a label "
        'must be one line of the labels file')
    assert not os.path.exists(os.path.join(out, 'labels.txt'))
    assert not os.path.exists(os.path.join(out, 'bn'))


def test_a_label_on_no_training_image_is_warned_about_and_the_run_goes_on(tmp_path,
                                                                         tiny_module):
    from retrain.data.image_lists import which_set
    rng = np.random.default_rng(7)
    images = tmp_path / 'images'
    rows = ['path,labels']
    for first, second in PAIRS:
        for i in range(8):
            name = f'{first}_{second}_{i}.jpg'
            write_two_colour_image(str(images / name), first, second, rng)
            rare = ';rare' if which_set(name, 10, 10) != 'training' else ''
            rows.append(f'{name},{first};{second}{rare}')
    assert any(row.endswith(';rare') for row in rows)
    (tmp_path / 'labels.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    result = run_module('retrain', *retrain_args(str(images), tiny_module, str(tmp_path / 'out'),
                                                 10, '--multi_label', '--image_labels_file',
                                                 str(tmp_path / 'labels.csv')))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("Label 'rare' on no training image: the layer learns to say no to it"
            in result.stderr)
