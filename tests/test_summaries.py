"""TensorBoard: classic scalars and histograms, confusion matrix, per-class accuracy, graph."""
import glob
import os
import re
from collections import defaultdict

import numpy as np
import pytest
import tensorflow as tf

from retrain.train import tensorboard_final

from conftest import fixed_split, retrain_args, run_module


def _events(run_dir: str):
    """tag -> list of (plugin, value) over every event file of one TensorBoard run folder."""
    tags, graphs = defaultdict(list), []
    for path in sorted(glob.glob(os.path.join(run_dir, 'events.out.tfevents.*'))):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.graph_def:
                graph = tf.compat.v1.GraphDef()
                graph.ParseFromString(event.graph_def)
                graphs.append(graph)
            for value in event.summary.value:
                tags[value.tag].append((value.metadata.plugin_data.plugin_name, value))
    return tags, graphs


@pytest.fixture(scope='module')
def summaries_run(tmp_path_factory, image_dir, tiny_module):
    """(summaries folder, stderr) of one run on a fixed split: every class has test images."""
    work = tmp_path_factory.mktemp('summaries')
    logs = work / 'logs'
    (logs / 'train').mkdir(parents=True)
    (logs / 'train' / 'events.out.tfevents.stale').write_bytes(b'left from an earlier run')
    cwd, images = fixed_split(image_dir)
    result = run_module('retrain', *retrain_args(
        images, tiny_module, str(work), 20, '--summaries_dir', str(logs),
        '--eval_step_interval', '5', '--testing_percentage', '40'), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return str(logs), result.stderr


@pytest.fixture(scope='module')
def summaries_dir(summaries_run):
    return summaries_run[0]


def test_earlier_runs_are_cleared(summaries_dir):
    assert sorted(os.listdir(summaries_dir)) == ['test', 'train', 'validation']
    assert 'events.out.tfevents.stale' not in os.listdir(os.path.join(summaries_dir, 'train'))


@pytest.mark.parametrize('run', ['train', 'validation'])
def test_classic_scalars_every_evaluation(summaries_dir, run):
    tags, _ = _events(os.path.join(summaries_dir, run))
    for tag in ('accuracy', 'cross_entropy'):
        assert len(tags[tag]) == 5  # Steps 0, 5, 10, 15 and the last, 19.
    if run == 'train':
        assert tags['final_layer/weights'] and tags['final_layer/biases']
        assert tags['final_layer/weights'][0][0] == 'histograms'


def test_final_layer_graph(summaries_dir):
    _, graphs = _events(os.path.join(summaries_dir, 'train'))
    assert len(graphs) == 1
    names = {node.name for node in graphs[0].node}
    assert {'input_1/BottleneckInputPlaceholder', 'final_training_ops/weights/final_weights',
            'final_training_ops/Wx_plus_b/add', 'final_result'} <= names
    assert not any(name.startswith('module/') for name in names)  # Just the new layer.


def test_confusion_matrix_and_per_class_accuracy(summaries_run):
    tags, _ = _events(os.path.join(summaries_run[0], 'test'))
    for label in ('blue', 'green', 'red'):
        (plugin, value), = tags[f'per_class_accuracy/{label}']
        assert plugin == 'scalars'
        assert 0.0 <= float(tf.make_ndarray(value.tensor)) <= 1.0
    (plugin, image), = tags['confusion_matrix']
    assert plugin == 'images'
    width, height, encoded = tf.make_ndarray(image.tensor)
    decoded = tf.io.decode_png(encoded).numpy()
    assert decoded.shape == (int(height), int(width), 3)
    (plugin, table), = tags['confusion_matrix_table']
    text = tf.make_ndarray(table.tensor).item().decode()
    assert plugin == 'text' and '| blue |' in text and 'true \\ predicted' in text
    # The three summaries and the log tell one story: the table's counts give the per-class
    # accuracies (diagonal / row), the overall one (trace / total) and the final log line.
    rows = {line.split('|')[1].strip(): [int(n) for n in line.split('|')[2:-1]]
            for line in text.splitlines() if re.match(r'\| (blue|green|red) \|', line)}
    counts = np.array([rows[c] for c in ('blue', 'green', 'red')])
    assert counts.shape == (3, 3) and counts.sum(axis=1).min() > 0, text
    for index, label in enumerate(('blue', 'green', 'red')):
        value = float(tf.make_ndarray(tags[f'per_class_accuracy/{label}'][0][1].tensor))
        assert value == pytest.approx(counts[index, index] / counts[index].sum()), label
    (_, accuracy), = tags['accuracy']
    overall = np.trace(counts) / counts.sum()
    assert float(tf.make_ndarray(accuracy.tensor)) == pytest.approx(overall)
    logged = re.search(r'Final test accuracy = ([0-9.]+)% \(N=(\d+)\)', summaries_run[1])
    assert (float(logged.group(1)), int(logged.group(2))) == (
        pytest.approx(100 * overall, abs=0.05), counts.sum())


def test_confusion_matrix_counts_and_picture():
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    counts = tensorboard_final.confusion_matrix(truth, predicted, 3)
    assert counts.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    image = tensorboard_final.confusion_image(counts)
    cell = image.shape[1] // 3
    assert image.shape == (1, cell * 3, cell * 3, 3)

    def centre(row, col):
        return image[0, row * cell + cell // 2, col * cell + cell // 2]
    assert centre(1, 1).tolist() == [8, 48, 107]  # The whole row: darkest blue.
    assert centre(2, 2).tolist() == [255, 255, 255]  # Nothing: white.
    assert centre(1, 1).sum() < centre(0, 0).sum() < centre(0, 1).sum() < 765
    table = tensorboard_final.confusion_table(counts, ['a', 'b', 'c'])
    assert table.splitlines()[2] == '| a | 2 | 1 | 0 |'
