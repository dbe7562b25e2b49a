"""`python -m compat inspect|convert`, and label_image on what convert writes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from compat import inspection
from retrain.common.errors import ToolError

import graph_builders as gb
import mediapipe_client
from conftest import REPO_ROOT, make_image_folder, run_module


def _convert_poets_graph(tmp_path):
    """(graph, labels file, label names, SavedModel folder, .tflite) after `compat convert` of a
    Poets-era graph with Unicode labels."""
    graph = gb.save(gb.poets_like(), str(tmp_path / 'retrained_graph.pb'))
    names = ['daisy', '玫瑰', 'tulips', 'sunflowers']
    labels = str(tmp_path / 'labels.txt')
    with open(labels, 'w', encoding='utf-8') as f:
        f.write(''.join(name + '\n' for name in names))
    saved, lite = str(tmp_path / 'saved'), str(tmp_path / 'model.tflite')
    result = run_module('compat', 'convert', graph, '--labels', labels, '--saved_model_dir', saved,
                        '--tflite_output_file', lite)
    assert result.returncode == 0, result.stderr
    return graph, labels, names, saved, lite


def test_inspect_reports_an_inception_era_graph(tmp_path):
    text = inspection.inspect(gb.save(gb.inception_like(), str(tmp_path / 'graph.pb')))
    lines = dict(line.split(': ', 1) for line in text.splitlines())
    assert lines['made by'] == 'Inception era retrain.py'
    assert lines['entry points'].startswith('DecodeJpeg/contents:0 (string []), '
                                            'Mul:0 (float32 [1, 24, 24, 3]), ')
    assert lines['output'] == 'final_result:0 (float32 [N, 4])'
    assert lines['input size'] == '24x24'
    assert lines['preprocessing'].startswith('Mul:0: float [1, 24, 24, 3] as (pixel - 128) / 128')
    assert lines['unsafe ops'] == 'none'
    assert 'DecodeJpeg 1' in lines['op counts']


def test_inspect_names_unsafe_ops_and_runs_nothing(tmp_path):
    target = str(tmp_path / 'pwned.txt')
    graph = gb.save(gb.writing_file(target), str(tmp_path / 'graph.pb'))
    result = run_module('compat', 'inspect', graph)
    assert result.returncode == 0, result.stderr
    assert 'unsafe ops: WriteFile' in result.stdout.splitlines()
    assert 'preprocessing: Placeholder:0: float [N, 24, 24, 3] as values in [0, 1]' in result.stdout
    assert not os.path.exists(target)


@pytest.mark.parametrize('name, make, message', [
    ('empty', os.makedirs, 'not a TensorFlow graph: {} (a directory without saved_model.pb)'),
    ('missing.pb', lambda path: None, 'graph file not found: {}'),
])
def test_inspect_of_what_is_no_model_is_one_line(tmp_path, name, make, message):
    """A folder without saved_model.pb once gave a traceback: inspect read it before checking."""
    path = str(tmp_path / name)
    make(path)
    with pytest.raises(ToolError) as error:
        inspection.inspect(path)
    assert str(error.value) == message.format(path)


def test_convert_then_label_image_on_saved_model_and_tflite(tmp_path):
    graph, labels, names, saved, lite = _convert_poets_graph(tmp_path)
    assert os.path.isfile(os.path.join(saved, 'saved_model.pb')) and os.path.isfile(lite)
    images = gb.image_paths(make_image_folder(str(tmp_path / 'images'), per_class=2, seed=3))
    expected = np.concatenate([gb.classic_run(graph, path, 'input:0', 127.5, 127.5)
                               for path in images])
    # The SavedModel brings its labels (assets/labels.txt); the .tflite file needs --labels.
    for args in (['--graph', saved], ['--graph', lite, '--labels', labels]):
        run = run_module('label_image', *args, '--json', '--top_k', '4', *images)
        assert run.returncode == 0, run.stderr
        for answer, row in zip(json.loads(run.stdout), expected):
            order = np.argsort(-row)
            assert [p['label'] for p in answer['predictions']] == [names[i] for i in order]
            np.testing.assert_allclose([p['score'] for p in answer['predictions']], row[order],
                                       atol=1e-4)


def test_convert_errors_are_one_line(tmp_path):
    graph = gb.save(gb.hub_like(), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'), 3)
    result = run_module('compat', 'convert', graph, '--labels', labels,
                        '--saved_model_dir', str(tmp_path / 'saved'))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'python -m compat convert: error: {labels} has 3 labels but {graph} outputs 4 classes')
    assert not os.path.exists(tmp_path / 'saved')


def test_converted_outputs_are_deployment_ready(tmp_path):
    """compat convert of a Poets-era graph: MediaPipe runs the .tflite with its metadata, the
    SavedModel answers encoded images, and inspect / label_image -v show the metadata."""
    graph, labels, names, saved, lite = _convert_poets_graph(tmp_path)
    images = mediapipe_client.noisy_images([(200, 40, 40), (40, 190, 60), (50, 60, 210)], 4,
                                           gb.SIZE)
    paths = []
    for i, pixels in enumerate(images):
        paths.append(str(tmp_path / f'{i}.png'))
        with open(paths[-1], 'wb') as f:
            f.write(tf.io.encode_png(pixels).numpy())
    expected = np.concatenate([gb.classic_run(graph, path, 'input:0', 127.5, 127.5)
                               for path in paths])
    # The SavedModel's bytes signature, on PNG and JPEG (decoded as the classic client did).
    serving = tf.saved_model.load(saved).signatures['serving_bytes']
    jpeg = str(tmp_path / 'photo.jpg')
    with open(jpeg, 'wb') as f:
        f.write(tf.io.encode_jpeg(images[0]).numpy())
    contents = []
    for path in (paths[0], paths[-1], jpeg):
        with open(path, 'rb') as f:
            contents.append(f.read())
    answer = serving(image_bytes=tf.constant(contents))
    np.testing.assert_allclose(answer['scores'].numpy(), np.concatenate(
        [expected[0:1], expected[-1:], gb.classic_run(graph, jpeg, 'input:0', 127.5, 127.5)]),
        atol=1e-3)
    assert [[n.decode('utf-8') for n in row] for row in answer['classes'].numpy()] == [names] * 3
    # MediaPipe, with nothing but the file.
    scores, categories = mediapipe_client.classify(lite, images)
    assert categories == names
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    inspect = run_module('compat', 'inspect', lite)
    assert inspect.returncode == 0, inspect.stderr
    verbose = run_module('label_image', '--graph', lite, '--labels', labels, '-v', paths[0])
    assert verbose.returncode == 0, verbose.stderr
    for shown in (inspect.stdout, verbose.stderr):
        assert "metadata: 'image classifier': retrained_graph.pb" in shown
        assert 'input  RGB image, (pixel - 0) / 255' in shown
        assert 'output 4 labels in labels.txt' in shown


def test_inspect_says_multi_label_for_a_sigmoid_final_result(tmp_path):
    import tensorflow as tf
    fork = inspection.inspect(gb.save(gb.inception_like(tf.sigmoid), str(tmp_path / 'fork.pb')))
    lines = dict(line.split(': ', 1) for line in fork.splitlines())
    assert lines['output'] == ('final_result:0 (float32 [N, 4]), multi-label '
                               '(a sigmoid score per label)')
    single = inspection.inspect(gb.save(gb.inception_like(), str(tmp_path / 'single.pb')))
    assert 'multi-label' not in single


def test_layers_have_one_direction_retrain_never_imports_compat():
    """compat builds on retrain; every retrain module imports without compat, label_image or
    make_image_classifier."""
    code = ('import importlib, pkgutil, sys, retrain\n'
            'for module in pkgutil.walk_packages(retrain.__path__, "retrain."):\n'
            '    importlib.import_module(module.name)\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("compat", "label_image", "make_image_classifier")))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '[]'


def test_inspect_does_not_run_a_model_that_loops_forever(tmp_path):
    """Inspect only imports the graph: a model that never ends is reported like any other."""
    graph = gb.save(gb.looping_graph(), str(tmp_path / 'loop.pb'))
    result = run_module('compat', 'inspect', graph, timeout=300)
    assert result.returncode == 0 and result.stderr == '', result.stderr[-3000:]
    assert 'output: final_result:0 (float32 [N, 4])' in result.stdout.splitlines()


def test_inspect_says_when_scores_are_not_probabilities(tmp_path):
    relu = inspection.inspect(gb.save(gb.inception_like(activation=tf.nn.relu),
                                      str(tmp_path / 'relu.pb')))
    softmax = inspection.inspect(gb.save(gb.inception_like(), str(tmp_path / 'softmax.pb')))
    assert ('output: final_result:0 (float32 [N, 4]), scores are not probabilities: the output '
            'is a Relu op, not Softmax or Sigmoid') in relu.splitlines()
    assert 'output: final_result:0 (float32 [N, 4])' in softmax.splitlines()


@pytest.mark.parametrize('outputs, message', [
    (('--saved_model_dir', 'out', '--tflite_output_file', 'out'),
     '--saved_model_dir and --tflite_output_file are the same path (out): the run would '
     'overwrite one with the other'),
    (('--saved_model_dir', 'out', '--tflite_output_file', os.path.join('out', 'm.tflite')),
     f'--tflite_output_file ({os.path.join("out", "m.tflite")}) is inside --saved_model_dir '
     '(out), a folder the run replaces whole: put it elsewhere'),
    (('--saved_model_dir', 'out', '--tflite_output_file', 'labels.txt'),
     '--tflite_output_file and --labels are the same path (labels.txt): the run would '
     'overwrite one with the other'),
])
def test_convert_refuses_outputs_on_one_another_before_any_work(tmp_path, outputs, message):
    gb.save(gb.poets_like(), str(tmp_path / 'graph.pb'))
    gb.write_labels(str(tmp_path / 'labels.txt'))
    before = sorted(os.listdir(tmp_path))
    result = run_module('compat', 'convert', 'graph.pb', '--labels', 'labels.txt', *outputs,
                        cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f'python -m compat: error: {message}']
    assert sorted(os.listdir(tmp_path)) == before
