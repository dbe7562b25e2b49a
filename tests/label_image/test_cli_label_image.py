"""`python -m label_image` end to end: a graph from `python -m retrain`, classified as users do."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from retrain.common.logs import readable

import graph_builders as gb
from conftest import REPO_ROOT, label_image_blocks, run_module, start_module, write_image


@pytest.fixture(scope='module')
def retrained(tmp_path_factory, tiny_module, image_dir):
    return gb.retrained(tmp_path_factory, tiny_module, image_dir)


@pytest.fixture(scope='module')
def folder_with_a_fake_jpeg(tmp_path_factory, image_dir) -> str:
    folder = str(tmp_path_factory.mktemp('to_classify'))
    for name in sorted(os.listdir(image_dir)):
        os.makedirs(os.path.join(folder, name))
        for image in sorted(os.listdir(os.path.join(image_dir, name)))[:4]:
            shutil.copy(os.path.join(image_dir, name, image), os.path.join(folder, name, image))
    with open(os.path.join(folder, 'red', 'notes.jpg'), 'w', encoding='utf-8') as f:
        f.write('this is a text file, not a photo\n')
    return folder



def test_a_truncated_jpeg_is_one_line_saying_so(retrained, image_dir, tmp_path):
    """TensorFlow said 'Invalid JPEG data or crop window' and its C++ side added a line."""
    graph, labels = retrained
    photo = os.path.join(image_dir, 'red', sorted(os.listdir(os.path.join(image_dir, 'red')))[0])
    with open(photo, 'rb') as f:
        data = f.read()
    cut = str(tmp_path / 'cut.jpg')
    with open(cut, 'wb') as f:
        f.write(data[:len(data) * 2 // 3])
    result = run_module('label_image', '--graph', graph, '--labels', labels, cut)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f'label_image: error: cannot classify {cut}: truncated or damaged JPEG data']


def test_an_op_name_holding_a_line_break_cannot_forge_a_line(image_dir, tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name='input')
        tf.nn.softmax(tf.reduce_mean(images, axis=[1, 2])[:, :2], name='final_result')
    graph_def = graph.as_graph_def()
    node = graph_def.node.add()
    node.name, node.op = 'x', 'Foo\nlabel_image: done\x1b[31m'
    path = str(tmp_path / 'forged.pb')
    with open(path, 'wb') as f:
        f.write(graph_def.SerializeToString())
    photo = os.path.join(image_dir, 'red', sorted(os.listdir(os.path.join(image_dir, 'red')))[0])
    result = run_module('label_image', '--graph', path, photo)
    assert result.returncode == 1
    line, = result.stderr.strip().splitlines()
    assert line.startswith('label_image: error: refusing to run ')
    assert r'Foo\nlabel_image: done\x1b[31m' in line


@pytest.mark.skipif(os.name == 'nt', reason='Windows file names hold no control characters')
def test_a_file_name_holding_a_line_break_or_escape_is_printed_on_one_line(retrained, image_dir,
                                                                          tmp_path):
    graph, labels = retrained
    photo = os.path.join(image_dir, 'red', sorted(os.listdir(os.path.join(image_dir, 'red')))[0])
    odd = str(tmp_path / 'a\nb\x1b[31m\r.jpg')
    shutil.copy(photo, odd)
    result = run_module('label_image', '--graph', graph, '--labels', labels, odd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tmp_path / r'a\nb\x1b[31m\r.jpg')
    assert '\x1b' not in result.stdout and '\r' not in result.stdout


def test_folder_with_a_bad_file_classifies_the_rest_and_exits_1(retrained,
                                                                 folder_with_a_fake_jpeg):
    graph, labels = retrained
    result = run_module('label_image', '--graph', graph, '--labels', labels,
                        folder_with_a_fake_jpeg)
    assert result.returncode == 1
    bad = os.path.join(folder_with_a_fake_jpeg, 'red', 'notes.jpg')
    errors = [line for line in result.stderr.splitlines() if line.startswith('label_image')]
    assert errors == [errors[0]] and errors[0].startswith(f'label_image: error: cannot classify '
                                                          f'{bad}: ')
    assert 'image' in errors[0].split(bad)[1].lower() and 'Traceback' not in result.stderr
    blocks = label_image_blocks(result.stdout)
    assert len(blocks) == 12 and bad not in blocks
    for path, predictions in blocks.items():
        assert len(predictions) == 3  # --top_k 5, but only 3 classes.
        scores = [score for _, score in predictions]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
        assert predictions[0][0] == os.path.basename(os.path.dirname(path))


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='named pipes are POSIX')
def test_pipes_devices_and_broken_links_are_not_read(retrained, image_dir, tmp_path):
    """A pipe never sends (the run hung) and /dev/zero never ends (11 GB in 16 s); a loop of
    links was called missing."""
    graph, labels = retrained
    folder = tmp_path / 'photos'
    folder.mkdir()
    shutil.copy(os.path.join(image_dir, 'red', 'red_000.jpg'), folder / 'red.jpg')
    os.mkfifo(folder / 'pipe.jpg')
    loop = tmp_path / 'loop.jpg'
    os.symlink(loop, loop)
    result = run_module('label_image', '--graph', graph, '--labels', labels, str(folder),
                        str(folder / 'pipe.jpg'), os.devnull, str(loop), timeout=120)
    assert result.returncode == 1
    assert list(label_image_blocks(result.stdout)) == [str(folder / 'red.jpg')]
    assert result.stderr.splitlines() == [
        f'label_image: error: cannot classify {path}: not a regular file (a device, a pipe or a '
        'socket): not read' for path in (folder / 'pipe.jpg', os.devnull)] + [
        f'label_image: error: cannot classify {loop}: a link that leads nowhere: '
        f'{os.strerror(errno.ELOOP)}']


def test_json_scores_equal_a_direct_tf1_run(retrained, folder_with_a_fake_jpeg):
    graph, labels = retrained
    images = gb.image_paths(folder_with_a_fake_jpeg)[:6]
    good = [path for path in images if not path.endswith('notes.jpg')]
    result = run_module('label_image', '--graph', graph, '--labels', labels, '--json',
                        '--batch_size', '4', '--top_k', '2', *good)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [answer['image'] for answer in answers] == good
    with open(labels, encoding='utf-8') as f:
        names = f.read().splitlines()
    for answer in answers:
        expected = gb.classic_run(graph, answer['image'], 'DecodeJpeg/contents:0')[0]
        top = np.argsort(-expected)[:2]
        assert [p['label'] for p in answer['predictions']] == [names[i] for i in top]
        np.testing.assert_allclose([p['score'] for p in answer['predictions']], expected[top],
                                   atol=1e-4)


def test_results_keep_the_order_given_with_failures_in_place(retrained,
                                                            folder_with_a_fake_jpeg, tmp_path):
    graph, labels = retrained
    good = [p for p in gb.image_paths(folder_with_a_fake_jpeg) if not p.endswith('notes.jpg')]
    bad = os.path.join(folder_with_a_fake_jpeg, 'red', 'notes.jpg')
    empty = str(tmp_path / 'empty.jpg')
    open(empty, 'wb').close()
    missing = str(tmp_path / 'missing.jpg')
    order = [good[5], missing, good[0], bad, good[3], empty, good[1], good[7], good[2]]
    result = run_module('label_image', '--graph', graph, '--labels', labels, '--json',
                        '--batch_size', '2', *order)
    assert result.returncode == 1
    answers = json.loads(result.stdout)
    assert [answer['image'] for answer in answers] == order
    errors = {answer['image']: answer['error'] for answer in answers if 'error' in answer}
    assert set(errors) == {missing, bad, empty}
    assert errors[missing] == 'no such file or folder' and errors[empty] == 'empty file'
    for answer in answers:
        if 'predictions' in answer:  # Each photo's own class, wherever it sits in the batches.
            assert answer['predictions'][0]['label'] == os.path.basename(
                os.path.dirname(answer['image']))


def test_classic_flags_are_accepted_and_verbose_explains(retrained, image_dir):
    graph, labels = retrained
    image = gb.image_paths(image_dir)[0]
    classic = run_module('label_image', f'--graph={graph}', f'--labels={labels}',
                         f'--image={image}', '--input_layer=Placeholder', '--input_mean', '0',
                         '--input_std', '255', '--input_height=32', '--input_width=32',
                         '--output_layer=final_result', '-v')
    assert classic.returncode == 0, classic.stderr
    expected = gb.classic_run(graph, image, 'DecodeJpeg/contents:0')[0]
    (path, predictions), = label_image_blocks(classic.stdout).items()
    assert path == image
    np.testing.assert_allclose([score for _, score in predictions], sorted(expected)[::-1],
                               atol=1e-5)
    assert 'Placeholder:0' in classic.stderr and 'final_result:0' in classic.stderr
    assert 'warning' not in classic.stderr


def test_wrong_classic_normalization_is_warned_about(retrained, image_dir):
    graph, labels = retrained
    result = run_module('label_image', '--graph', graph, '--labels', labels,
                        '--input_layer=Placeholder', '--input_mean=128', '--input_std=128',
                        gb.image_paths(image_dir)[0])
    assert result.returncode == 0
    assert 'label_image: warning: --input_mean/--input_std give (pixel - 128) / 128, but ' \
           'Placeholder:0 expects values in [0, 1]' in result.stderr


def test_label_count_mismatch_is_one_line(retrained, image_dir, tmp_path):
    graph, _ = retrained
    two_labels = gb.write_labels(str(tmp_path / 'labels.txt'), 2)
    result = run_module('label_image', '--graph', graph, '--labels', two_labels,
                        gb.image_paths(image_dir)[0])
    assert result.returncode == 1 and result.stdout == ''
    errors = [line for line in result.stderr.splitlines() if line.startswith('label_image')]
    assert errors == [f'label_image: error: {two_labels} has 2 labels but {graph} outputs 3 '
                      'classes']


def test_an_empty_folder_alone_is_one_line_naming_it(retrained, tmp_path):
    """No image anywhere to classify: the empty input once crashed the decoding pipeline."""
    graph, labels = retrained
    empty = str(tmp_path / 'empty')
    os.makedirs(empty)
    result = run_module('label_image', '--graph', graph, '--labels', labels, empty)
    assert result.returncode == 1 and result.stdout == '', result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('label_image')]
    assert errors == [f'label_image: error: cannot classify {empty}: no image files in this folder']
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('bad, message', [
    (['--input_std', '0'], 'argument --input_std: must not be 0: pixel values are divided by it'),
    (['--input_std', 'nan'], 'argument --input_std: must be a finite number, not nan'),
    (['--input_mean', 'x'], "argument --input_mean: must be a number, not 'x'"),
    (['--top_k', '2.5'], "argument --top_k/--num_top_predictions: must be a whole number, not "
                         "'2.5'"),
    (['--threshold', '2'], 'argument --threshold: must be between 0 and 1, not 2.0'),
    # NaN would fail every comparison: no image would ever be called unknown.
    (['--unknown_threshold', 'nan'], 'argument --unknown_threshold: must be a number, not nan'),
    (['--no_such_flag'], 'unrecognized arguments: --no_such_flag'),
])
def test_bad_flag_values_are_usage_errors(bad, message):
    """--input_std 0 once ended in a ZeroDivisionError traceback; argparse's usage block came
    before the error, which is now the one line on stderr."""
    result = run_module('label_image', *bad, 'photo.jpg')
    assert result.returncode == 2 and result.stdout == ''
    assert result.stderr.splitlines() == [f'label_image: error: {message}']


@pytest.mark.parametrize('value, expected', [('-0.5', -0.5), ('-1e9', -1e9), ('-2.5E-1', -0.25),
                                             ('-inf', -float('inf'))])
def test_negative_numbers_in_every_notation_are_flag_values(value, expected):
    """argparse of Python 3.11 took `-1e9` and `-inf` for flags: `expected one argument`."""
    from label_image.cli import _parser
    parsed = _parser().parse_args(['--unknown_threshold', value, 'photo.jpg'])
    assert parsed.unknown_threshold == expected and parsed.images == ['photo.jpg']


def test_no_images_is_a_usage_error():
    result = run_module('label_image')
    assert result.returncode == 2 and 'no images given' in result.stderr


def test_legacy_poets_graph_without_preprocessing_flags(shared_dir):
    """The real held-out Poets graph: label_image agrees with a direct TF1 run (top-1, ±0.02)."""
    folder = os.path.join(shared_dir, 'models', 'legacy', 'glasses_mobilenet_0.25_224')
    graph = os.path.join(folder, 'retrained_graph.pb')
    photos = os.path.join(shared_dir, 'data', 'flower_photos_small')
    images = sorted(os.path.join(photos, name, image) for name in os.listdir(photos)
                    if os.path.isdir(os.path.join(photos, name))
                    for image in sorted(os.listdir(os.path.join(photos, name)))[:2])
    result = run_module('label_image', '--graph', graph, '--labels',
                        os.path.join(folder, 'retrained_labels.txt'), '--json', *images)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(folder, 'retrained_labels.txt'), encoding='utf-8') as f:
        names = f.read().splitlines()
    for answer in json.loads(result.stdout):
        top = answer['predictions'][0]
        assert set(answer) == {'image', 'predictions'}  # No judgement: as before.
        for mean in (127.5, 128.0):  # How Poets retrain.py trained it; how its label_image fed it.
            expected = gb.classic_run(graph, answer['image'], 'input:0', mean, mean, 224)[0]
            assert top['label'] == names[int(np.argmax(expected))]
            assert abs(top['score'] - float(expected.max())) < 0.02


def test_a_fork_multilabel_graph_prints_the_labels_at_or_above_the_threshold(tmp_path,
                                                                             image_dir):
    """Multi-label-Inception-net graphs: DecodeJpeg/contents -> ... -> sigmoid final_result."""
    import tensorflow as tf
    graph = gb.save(gb.inception_like(tf.sigmoid), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    names = [f'class {i}' for i in range(gb.CLASSES)]
    images = gb.image_paths(image_dir)[::30]
    scores = {image: gb.classic_run(graph, image, 'DecodeJpeg/contents:0')[0] for image in images}
    # The threshold of the whole run: between two adjacent scores of the first image.
    first = sorted(scores[images[0]], reverse=True)
    threshold = (first[1] + first[2]) / 2
    result = run_module('label_image', '--graph', graph, '--labels', labels,  # (--top_k: in
                        '--threshold', f'{threshold:.6f}', *images)  # test_multilabel_cli.)
    assert result.returncode == 0, result.stderr
    for block in result.stdout.strip().split('\n\n'):
        path, *lines = block.splitlines()
        printed = [re.match(r'^(.+) \(score = (\d\.\d{5})\)$', line).groups() for line in lines]
        expected = [i for i in sorted(range(gb.CLASSES), key=lambda i: -scores[path][i])
                    if scores[path][i] >= threshold][:5]
        assert [label for label, _ in printed] == [names[i] for i in expected]
        for (_, score), index in zip(printed, expected):
            assert abs(float(score) - scores[path][index]) < 1e-4
    assert len(result.stdout.strip().split('\n\n')[0].splitlines()) == 3  # Two labels.
    every = run_module('label_image', '--graph', graph, '--labels', labels, '--json', *images)
    for answer in json.loads(every.stdout):
        assert sorted(p['label'] for p in answer['predictions']) == names


def test_utf16_labels_are_read_with_a_bom_and_refused_without(tmp_path):
    """Without a byte-order mark, UTF-16 text decoded as UTF-8 into labels full of NULs."""
    graph = gb.save(gb.hub_like(), str(tmp_path / 'graph.pb'))
    photo = str(tmp_path / 'photo.jpg')
    write_image(photo, (90, 120, 200), np.random.default_rng(0))
    names = ['daisy', 'dandelion', 'roses', 'tulips']
    text = ''.join(name + '\r\n' for name in names)  # As Windows tools write it.
    with_bom, without_bom = str(tmp_path / 'bom.txt'), str(tmp_path / 'no_bom.txt')
    with open(with_bom, 'wb') as f:
        f.write(text.encode('utf-16'))
    with open(without_bom, 'wb') as f:
        f.write(text.encode('utf-16-le'))
    read = run_module('label_image', '--graph', graph, '--labels', with_bom, '--json',
                      '--top_k', '4', photo)
    assert read.returncode == 0, read.stderr
    expected = gb.classic_run(graph, photo, 'Placeholder:0')[0]
    assert [p['label'] for p in json.loads(read.stdout)[0]['predictions']] == [
        names[i] for i in np.argsort(-expected)]
    assert 'unknown' not in json.loads(read.stdout)[0]  # Old graphs: no judgement.
    refused = run_module('label_image', '--graph', graph, '--labels', without_bom, photo)
    assert refused.returncode == 1 and refused.stdout == ''
    errors = [line for line in refused.stderr.splitlines() if line.startswith('label_image')]
    assert errors == [f'label_image: error: labels file is not UTF-8 text: {without_bom} (it '
                      'holds NUL characters: UTF-16 without a byte-order mark? Save it as UTF-8)']


@pytest.mark.skipif(not os.path.exists('/dev/stdin'), reason='no /dev/stdin on Windows')
def test_labels_read_from_a_pipe(tmp_path):
    """`--labels <(cat labels.txt)` or /dev/stdin: tf.io.gfile read 0 bytes from the pipe."""
    graph = gb.save(gb.hub_like(), str(tmp_path / 'graph.pb'))
    photo = str(tmp_path / 'photo.jpg')
    write_image(photo, (90, 120, 200), np.random.default_rng(0))
    child = start_module('label_image', '--graph', graph, '--labels', '/dev/stdin', '--json',
                         photo, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding='utf-8')
    stdout, stderr = child.communicate(''.join(f'flower {i}\n' for i in range(gb.CLASSES)),
                                       timeout=120)
    assert child.returncode == 0 and stderr == '', stderr[-3000:]
    (answer,) = json.loads(stdout)
    assert {p['label'] for p in answer['predictions']} == {f'flower {i}' for i in range(4)}


def test_folder_links_and_names_that_are_not_utf8(retrained, folder_with_a_fake_jpeg, tmp_path):
    """Links to a parent once gave 41 duplicates (two of them: a hang); odd names a traceback,
    then lone surrogates (`\\udcff`) in the JSON, which strict parsers refuse: now `\\xff`, as
    in the log and report.json."""
    graph, labels = retrained
    folder = str(tmp_path / 'photos')
    shutil.copytree(folder_with_a_fake_jpeg, folder)
    os.remove(os.path.join(folder, 'red', 'notes.jpg'))
    os.symlink('..', os.path.join(folder, 'red', 'up'))
    os.symlink('..', os.path.join(folder, 'blue', 'up'))
    os.symlink(os.path.join('..', 'red'), os.path.join(folder, 'green', 'again'))
    os.symlink('red_000.jpg', os.path.join(folder, 'red', 'link.jpg'))
    green = os.fsencode(os.path.join(folder, 'green'))
    try:
        odd = os.path.join(os.fsencode(folder), b'gr\xfcn')
        shutil.copytree(green, odd, symlinks=True)
        shutil.copy(os.path.join(green, b'green_000.jpg'), os.path.join(green, b'\xff.jpg'))
    except OSError as e:  # macOS file systems refuse names that are not valid UTF-8.
        pytest.skip(f'this file system refuses names that are not UTF-8: {e}')
    result = run_module('label_image', '--graph', graph, '--labels', labels, '--json', folder)
    assert result.returncode == 0, result.stderr
    result.stdout.encode('utf-8')  # No lone surrogates, escaped or not.
    assert '\\udc' not in result.stdout
    answers = json.loads(result.stdout)
    real = sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                  for name in names if not os.path.islink(os.path.join(root, name)))
    images = [answer['image'] for answer in answers]
    assert images == [readable(path) for path in real] and len(real) == 17
    assert os.path.join(folder, 'green', '\\xff.jpg') in images
    for answer in answers:
        expected = os.path.basename(os.path.dirname(answer['image']))
        assert answer['predictions'][0]['label'] == {'gr\\xfcn': 'green'}.get(expected, expected)


# Creates $MARKER when the tool first calls Classifier.classify_judged: the model is about to run.
_CLASSIFY_HOOK = '''import importlib.abc, importlib.util, os, sys
class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != 'compat.classifier':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            classify = module.Classifier.classify_judged  # classify calls it too.
            def marked(self, images):
                open(os.environ['MARKER'], 'w').close()
                return classify(self, images)
            module.Classifier.classify_judged = marked
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, _Hook())
'''


@pytest.mark.parametrize('command, interrupted', [
    (['label_image', '--graph', 'loop.pb', '--labels', 'labels.txt', 'photo.jpg'],
     'label_image: interrupted'),
    (['compat', 'convert', 'loop.pb', '--labels', 'labels.txt', '--saved_model_dir', 'saved'],
     'python -m compat: interrupted'),
])
def test_ctrl_c_ends_a_model_that_loops_forever(tmp_path, command, interrupted):
    """The loop runs inside one TensorFlow call: once only kill -9 ended the tool."""
    gb.save(gb.looping_graph(), str(tmp_path / 'loop.pb'))
    gb.write_labels(str(tmp_path / 'labels.txt'))
    write_image(str(tmp_path / 'photo.jpg'), (90, 120, 200), np.random.default_rng(0))
    hook_dir, marker = tmp_path / 'hook', tmp_path / 'classifying'
    hook_dir.mkdir()
    (hook_dir / 'sitecustomize.py').write_text(_CLASSIFY_HOOK)
    child = start_module(*command, cwd=str(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding='utf-8', env_extra={
                             'MARKER': str(marker),
                             'PYTHONPATH': os.pathsep.join([str(hook_dir), REPO_ROOT])})
    try:
        while not marker.exists():
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        time.sleep(1)  # Well inside the loop (the old code would then hang; the new never does).
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=15)  # Generous: the promise is a second or two.
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130 and stderr == interrupted + '\n', stderr[-3000:]
    assert not os.path.exists(tmp_path / 'saved')


@pytest.mark.parametrize('level', [None, '2'])
def test_no_tensorflow_notices_whatever_tf_cpp_min_log_level(retrained, image_dir, level):
    """TF_CPP_MIN_LOG_LEVEL=2 (the usual advice) once brought the start-up notices back. The
    import alone is checked at every level in tests/common/test_quiet_tensorflow.py; here the
    whole run, at TensorFlow's default level and at the one that once failed."""
    env = {key: value for key, value in os.environ.items() if key != 'TF_CPP_MIN_LOG_LEVEL'}
    if level is not None:
        env['TF_CPP_MIN_LOG_LEVEL'] = level
    graph, labels = retrained
    image = os.path.join(image_dir, 'red', 'red_001.jpg')
    result = subprocess.run([sys.executable, '-m', 'label_image', '--graph', graph, '--labels',
                             labels, image], capture_output=True, text=True, encoding='utf-8',
                            env=dict(env, PYTHONPATH=REPO_ROOT), cwd=REPO_ROOT, timeout=300)
    assert result.returncode == 0 and result.stderr == '', result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == image and lines[1].startswith('red (score = ')


def test_scores_that_are_not_probabilities_are_said_to_be_so_once(tmp_path):
    """A Relu final layer: its scores once printed as if they were confidences."""
    graph = gb.save(gb.inception_like(activation=tf.nn.relu), str(tmp_path / 'relu.pb'))
    softmax = gb.save(gb.inception_like(), str(tmp_path / 'softmax.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    image = str(tmp_path / 'photo.jpg')
    write_image(image, (90, 120, 200), np.random.default_rng(0))
    note = (f'label_image: note: final_result:0 of {graph}: scores are not probabilities: the '
            'output is a Relu op, not Softmax or Sigmoid\n')
    text = run_module('label_image', '--graph', graph, '--labels', labels, image, image)
    assert text.returncode == 0 and text.stderr == note, text.stderr[-3000:]
    assert text.stdout.startswith(image + '\nclass ')
    as_json = run_module('label_image', '--graph', graph, '--labels', labels, '--json', image)
    assert as_json.returncode == 0 and as_json.stderr == note, as_json.stderr[-3000:]
    (result,) = json.loads(as_json.stdout)
    assert result['note'] == note.split(': ', 3)[3].strip()
    plain = run_module('label_image', '--graph', softmax, '--labels', labels, '--json', image)
    assert plain.returncode == 0 and plain.stderr == '', plain.stderr[-3000:]
    assert sorted(json.loads(plain.stdout)[0]) == ['image', 'predictions']


@pytest.fixture(scope='module')
def odd_and_usual_images(tmp_path_factory, image_dir) -> list:
    """The photos of the training colours, then images unlike any of them."""
    folder = tmp_path_factory.mktemp('odd')
    usual = list(gb.image_paths(image_dir))
    rng = np.random.default_rng(5)
    odd = []
    for index in range(3):  # Noise of every colour at once: like no class.
        path = str(folder / f'noise_{index}.png')
        tf.io.write_file(path, tf.io.encode_png(rng.integers(0, 256, (40, 48, 3), np.uint8)))
        odd.append(path)
    return usual + odd


def test_retrained_graph_judges_unknown_beside_an_unchanged_final_result(retrained):
    graph, _ = retrained
    graph_def = tf.compat.v1.GraphDef.FromString(open(graph, 'rb').read())
    nodes = {node.name: node for node in graph_def.node}
    assert nodes['final_result'].op == 'Softmax'
    assert nodes['final_result'].input == ['final_training_ops/Wx_plus_b/add']
    assert nodes['unknown_score'].attr['T'].type == tf.float32.as_datatype_enum
    assert nodes['unknown'].op == 'Greater' and nodes['unknown'].input[0] == 'unknown_score'


def test_label_image_says_unknown_with_the_best_guess_and_the_score(retrained,
                                                                    odd_and_usual_images):
    graph, labels = retrained
    result = run_module('label_image', '--graph', graph, '--labels', labels, '--json',
                        *odd_and_usual_images)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout)
    judged = [answer['unknown'] for answer in answers]
    assert all(answer['unknown'] == (answer['unknown_score'] > 0) for answer in answers)
    assert judged[-3:] == [True] * 3 and np.mean(judged[:-3]) < 0.15, judged
    text = run_module('label_image', '--graph', graph, '--labels', labels, '--top_k', '1',
                      *odd_and_usual_images)
    blocks = text.stdout.strip().split('\n\n')
    for answer, block in zip(answers, blocks):
        lines = block.splitlines()
        guess = answer['predictions'][0]['label']
        if answer['unknown']:
            assert lines[1] == (f'unknown (best guess = {guess}, '
                                f'unknown score = {answer["unknown_score"]:.5f} > 0)')
            assert lines[2].startswith(f'{guess} (score = ')
        else:
            assert lines[1:] == [f'{guess} (score = {answer["predictions"][0]["score"]:.5f})']
    # The operating point moves with the flag: past every score, nothing is unknown.
    highest = max(answer['unknown_score'] for answer in answers)
    lenient = run_module('label_image', '--graph', graph, '--labels', labels, '--json',
                         '--unknown_threshold', str(highest + 1), *odd_and_usual_images)
    assert not any(answer['unknown'] for answer in json.loads(lenient.stdout))


def test_inspect_says_whether_a_model_carries_the_judgement(retrained, tmp_path):
    graph, _ = retrained
    carries = run_module('compat', 'inspect', graph)
    assert carries.returncode == 0, carries.stderr[-3000:]
    assert ('unknown judgement: unknown_score:0 (float32 [N]), above 0: unlike the training '
            'images') in carries.stdout.splitlines()
    old = run_module('compat', 'inspect', gb.save(gb.hub_like(), str(tmp_path / 'old.pb')))
    assert 'unknown judgement: none (' in old.stdout


def test_nan_scores_fail_that_image_and_the_json_stays_strict(tmp_path):
    """A layer gone NaN printed `score = nan`, or `"score": NaN` that strict parsers refuse;
    `Infinity` likewise."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name='input')
        colour = tf.reduce_mean(images, axis=[1, 2])
        red, green, blue = colour[:, 0], colour[:, 1], colour[:, 2]
        broken = 0.0 * tf.math.log(red - blue)[:, None]  # NaN where blue > red.
        tf.nn.softmax(colour[:, :2] + broken, name='final_result')
        tf.identity(-tf.math.log(tf.nn.relu(red - green)),  # Infinite where green >= red.
                    name='unknown_score')
    path = gb.save(graph.as_graph_def(), str(tmp_path / 'nan.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'), 2)
    photos = {}
    for name, colour in ('blue', (30, 30, 200)), ('green', (120, 200, 30)), ('red', (200, 30, 30)):
        photos[name] = str(tmp_path / f'{name}.jpg')
        write_image(photos[name], colour, np.random.default_rng(0))
    expected = [f'label_image: error: cannot classify {photos[name]}: the model returned NaN or '
                'infinite scores' for name in ('blue', 'green')]
    text = run_module('label_image', '--graph', path, '--labels', labels, *photos.values())
    assert text.returncode == 1 and text.stderr.splitlines() == expected, text.stderr[-3000:]
    assert text.stdout.startswith(photos['red'] + '\nclass ') and '= nan' not in text.stdout
    as_json = run_module('label_image', '--graph', path, '--labels', labels, '--json',
                         *photos.values())
    assert as_json.returncode == 1 and as_json.stderr.splitlines() == expected

    def refuse(constant):
        raise ValueError(f'not strict JSON: {constant}')
    *failed, classified = json.loads(as_json.stdout, parse_constant=refuse)
    assert failed == [{'image': photos[name], 'error': 'the model returned NaN or infinite scores'}
                      for name in ('blue', 'green')]
    assert classified['image'] == photos['red'] and np.isfinite(classified['unknown_score'])
