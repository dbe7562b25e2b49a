"""Messy folders, interruptions, Unicode names and clear errors, through the real CLI."""
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from retrain.cache import bottleneck_files
from retrain.data.image_lists import which_set
from retrain.features.hub_module import hub_cache_suffix

from conftest import (
    TINY_SIZE,
    TinyFeatureVector,
    closed_port_url,
    make_image_folder,
    retrain_args,
    run_module,
    start_module,
)
from messy_images import SYSTEM_FILES, messy_files


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('retrain: error:')]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture(scope='module')
def messy_dir(tmp_path_factory):
    root = make_image_folder(str(tmp_path_factory.mktemp('messy') / 'images'), per_class=24)
    for name, data, _ in messy_files():
        path = os.path.join(root, 'red', name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
    for name, data in SYSTEM_FILES:
        for folder in (root, os.path.join(root, 'green')):
            with open(os.path.join(folder, name), 'wb') as f:
                f.write(data)
    return root


def test_messy_folder_trains_and_names_each_unreadable_file(messy_dir, tiny_module, tmp_path):
    result = run_module('retrain', *retrain_args(messy_dir, tiny_module, str(tmp_path)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    unreadable = [name for name, _, readable in messy_files() if not readable]
    for name in unreadable:
        path = os.path.join(messy_dir, 'red', name)
        assert len(re.findall(rf'Skipping {re.escape(path)}: \S', result.stderr)) == 1, name
    assert f'Skipped {len(unreadable)} unreadable image(s)' in result.stderr
    suffix = hub_cache_suffix(tiny_module)
    for name, _, readable in messy_files():  # huge.jpg as decoded scaled down.
        cache = os.path.join(str(tmp_path), 'bn', 'red', name + suffix)
        found = [tail for tail in ('.txt', '_scaled_jpegs.txt') if os.path.exists(cache + tail)]
        assert len(found) == readable, name
    for name, _ in SYSTEM_FILES:
        assert name not in result.stderr
    assert re.search(r'Final test accuracy = [\d.]+%', result.stderr)


def test_allow_truncated_images_uses_what_a_truncated_jpeg_holds(messy_dir, tiny_module, tmp_path):
    args = retrain_args(messy_dir, tiny_module, str(tmp_path), 5, '--allow_truncated_images')
    result = run_module('retrain', *args)
    assert result.returncode == 0, result.stderr[-3000:]
    truncated = os.path.join(messy_dir, 'red', 'truncated.jpg')
    assert f'Skipping {truncated}' not in result.stderr
    cache = os.path.join(str(tmp_path), 'bn', 'red',  # 192x160: decoded scaled down.
                         'truncated.jpg' + hub_cache_suffix(tiny_module) + '_scaled_jpegs.txt')
    assert bottleneck_files.read_bottleneck(cache, 19) is not None
    assert 'Skipped 2 unreadable image(s)' in result.stderr  # The empty and the text file.


def test_unicode_and_spaced_class_names(tiny_module, tmp_path):
    colours = {'玫瑰': (200, 40, 40), 'café': (40, 190, 60), 'Sun Flowers': (50, 60, 210)}
    image_dir = make_image_folder(str(tmp_path / 'mes images ü'), per_class=20, colours=colours)
    out = str(tmp_path / 'sortie é')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out))
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
        assert f.read().splitlines() == ['sun flowers', 'café', '玫瑰']  # Sorted folder order.


def test_classes_of_copies_of_one_image_train_without_the_unknown_judgement(image_dir, tiny_module,
                                                                          tmp_path):
    """Every bottleneck of a class the same: no spread to tell an unusual image by (it divided
    by zero once); the run ends with the classic outputs and says why the judgement is missing."""
    copies = str(tmp_path / 'copies')
    for label in ('red', 'blue'):
        os.makedirs(os.path.join(copies, label))
        for i in range(12):
            shutil.copy(os.path.join(image_dir, label, f'{label}_000.jpg'),
                        os.path.join(copies, label, f'copy_{i}.jpg'))
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(copies, tiny_module, out, 10))
    assert result.returncode == 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert 'the exported model carries no unknown judgement' in result.stderr
    graph_def = tf.compat.v1.GraphDef()
    with open(os.path.join(out, 'graph.pb'), 'rb') as f:
        graph_def.ParseFromString(f.read())
    names = {node.name for node in graph_def.node}
    assert 'final_result' in names and 'unknown_score' not in names


@pytest.mark.parametrize('case', ['missing', 'empty', 'one_class', 'no_readable'])
def test_bad_image_dir_errors(case, tiny_module, tmp_path):
    image_dir = str(tmp_path / 'images')
    expected = {'missing': 'image directory not found', 'empty': 'no class folders',
                'one_class': 'only one class folder',
                'no_readable': "class folders 'green', 'red' have no readable images"}
    if case != 'missing':
        os.makedirs(image_dir)
    if case == 'one_class':
        make_image_folder(image_dir, per_class=3, colours={'red': (200, 0, 0)})
    if case == 'no_readable':
        make_image_folder(image_dir, per_class=3)
        for folder in ('green', 'red'):  # Both named: only the first was, a rerun for each.
            for name in os.listdir(os.path.join(image_dir, folder)):
                with open(os.path.join(image_dir, folder, name), 'wb') as f:
                    f.write(b'not an image')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path / 'out')))
    _assert_one_line_error(result, expected[case])


@pytest.mark.parametrize('case', ['listed', 'unreadable'])
def test_classes_without_training_images_stop_the_run_before_training(case, tiny_module,
                                                                      tmp_path):
    """All such classes are named in the one line: only the first was, a rerun for each."""
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=6)
    red = os.path.join(image_dir, 'red', sorted(os.listdir(os.path.join(image_dir, 'red')))[0])
    for lonely in (os.path.join(image_dir, name) for name in ('lonely', 'alone')):
        os.makedirs(lonely)
        names = [f'lonely_{i}.jpg' for i in range(200)]
        split = {n: which_set(os.path.join(lonely, n), 10, 10) for n in names}  # As listed.
        outside = [n for n in names if split[n] != 'training'][:2]
        inside = [n for n in names if split[n] == 'training'][:2]
        for name in outside + (inside if case == 'unreadable' else []):
            shutil.copy(red, os.path.join(lonely, name))
        if case == 'unreadable':
            for name in inside:
                with open(os.path.join(lonely, name), 'wb') as f:
                    f.write(b'not an image')
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out))
    readable = 'readable ' if case == 'unreadable' else ''
    _assert_one_line_error(result, f"classes 'alone', 'lonely' have no {readable}images in the "
                           'training split: a layer cannot learn them; add images to them or '
                           'remove them')
    assert not os.path.exists(os.path.join(out, 'graph.pb'))
    # Filling the cache alone trains nothing, so needs no training image.
    filled = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 0))
    assert filled.returncode == 0, filled.stderr[-2000:]


def test_a_class_called_unknown_is_warned_about(tiny_module, tmp_path):
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=3,
                                  colours={'Unknown': (200, 0, 0), 'blue': (0, 0, 200)})
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path / 'out'),
                                                 0))
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("A class is called 'unknown': label_image also says \"unknown (best guess = ...)\" "
            'for images unlike the training ones') in result.stderr


def test_module_errors(image_dir, tmp_path):
    unreachable = closed_port_url('module.tar.gz')
    result = run_module('retrain', *retrain_args(image_dir, unreachable, str(tmp_path)))
    _assert_one_line_error(result, 'cannot load module', unreachable)
    not_a_module = str(tmp_path / 'folder')
    os.makedirs(not_a_module)
    result = run_module('retrain', *retrain_args(image_dir, not_a_module, str(tmp_path)))
    _assert_one_line_error(result, 'cannot load module', not_a_module)


def test_module_that_is_not_an_image_feature_vector(image_dir, tmp_path):
    import tensorflow as tf

    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
        def __call__(self, images):
            return tf.reduce_mean(images, axis=[1, 2, 3])  # [N], not [N, D].

    path = str(tmp_path / 'scalar_module')
    tf.saved_model.save(Classifier(), path)
    result = run_module('retrain', *retrain_args(image_dir, path, str(tmp_path)))
    _assert_one_line_error(result, 'is not an image feature vector', path)


def test_unwritable_output_location(image_dir, tiny_module, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    args = retrain_args(image_dir, tiny_module, str(tmp_path))
    args[args.index('--output_graph') + 1] = str(blocker / 'graph.pb')
    result = run_module('retrain', *args)
    _assert_one_line_error(result, 'cannot write', str(blocker / 'graph.pb'))


def _start_retrain(args):
    return start_module('retrain', *args, env_extra={'TF_CPP_MIN_LOG_LEVEL': '2'},
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _count_cache_files(cache_dir):
    return sum(name.endswith('.txt') for _, _, files in os.walk(cache_dir) for name in files)


def _wait_for_new_cache_files(cache_dir, process, count=1):
    """Returns once `process` has written `count` cache files that were not there before."""
    before = _count_cache_files(cache_dir)
    while process.poll() is None:
        if _count_cache_files(cache_dir) >= before + count:
            return
        time.sleep(0.02)  # A poll of the folder, not a guess at how long caching takes.
    raise AssertionError(f'the run ended before writing {count} cache files: '
                         f'{process.communicate()[1][-2000:]}')


class SlowFeatureVector(TinyFeatureVector):
    """The tiny module plus real convolution work (~10 ms an image), so caching is slow enough to
    interrupt at a random point; its bottlenecks barely differ from the tiny module's."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(1)
        self.wide = tf.Variable(rng.normal(0, 0.1, (3, 3, 3, 32)).astype(np.float32))
        self.deep = tf.Variable(rng.normal(0, 0.1, (3, 3, 32, 32)).astype(np.float32))
        self.__call__ = tf.function(self._slow_features, input_signature=[
            tf.TensorSpec([None, TINY_SIZE, TINY_SIZE, 3], tf.float32)])

    def _slow_features(self, images):
        large = tf.image.resize(images, [160, 160])
        work = tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(large, self.wide, 1, 'SAME')), self.deep, 1,
                            'SAME')
        return self._features(images) + 1e-6 * tf.reduce_mean(work)


# Enough images that a run interrupted early still has seconds of caching left: caching got
# fast enough that a second run could finish 60 a class within the kill's random delay.
SLOW_PER_CLASS = 100


@pytest.fixture(scope='module')
def slow_setup(tmp_path_factory):
    """Large images and a slow module: caching takes seconds, long enough to interrupt."""
    root = tmp_path_factory.mktemp('slow')
    image_dir = make_image_folder(str(root / 'images'), per_class=SLOW_PER_CLASS, seed=5,
                                  shape=(720, 960))
    module = str(root / 'module')
    tf.saved_model.save(SlowFeatureVector(), module)
    return image_dir, module


def _final_line(stderr):
    return re.search(r'Final test accuracy = .*', stderr).group(0)


def test_kill_9_while_caching_then_rerun(slow_setup, tmp_path):
    image_dir, module = slow_setup
    reference = run_module('retrain', *retrain_args(image_dir, module, str(tmp_path / 'ref'), 30,
                                                     '--random_seed', '11', '--cache_batch_size',
                                                     '8'))
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = str(tmp_path / 'killed')
    args = retrain_args(image_dir, module, out, 30, '--random_seed', '11',
                         '--cache_batch_size', '8')
    for count in (5, 21):  # Killed mid-batch (batches of 8), at places of its own choosing.
        process = _start_retrain(args)
        _wait_for_new_cache_files(os.path.join(out, 'bn'), process, count)
        process.send_signal(signal.SIGKILL)
        process.communicate()
    # Every cache file is whole; a kill -9 can leave a half-written temporary (`.tmp-...`, which
    # nothing reads), never a half-written cache file.
    cache_files = [os.path.join(root, name) for root, _, files in os.walk(os.path.join(out, 'bn'))
                   for name in files if name.endswith('.txt') and not name.startswith('.tmp-')]
    assert 0 < len(cache_files) < 3 * SLOW_PER_CLASS
    for path in cache_files:
        assert bottleneck_files.read_bottleneck(path, 19) is not None, path
    assert not os.path.exists(os.path.join(out, 'graph.pb'))
    rerun = run_module('retrain', *args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _final_line(rerun.stderr) == _final_line(reference.stderr)


def test_ctrl_c_exits_promptly_without_traceback_or_outputs(slow_setup, tmp_path):
    image_dir, module = slow_setup
    out = str(tmp_path / 'interrupted')
    process = _start_retrain(retrain_args(image_dir, module, out, 30, '--cache_batch_size', '8'))
    _wait_for_new_cache_files(os.path.join(out, 'bn'), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr[-2000:]
    # Promptly: caching stopped where it was (a speed-free proof) and training never began.
    assert _count_cache_files(os.path.join(out, 'bn')) < 3 * SLOW_PER_CLASS
    assert 'Step 0:' not in stderr
    assert 'Traceback' not in stderr
    assert 'retrain: interrupted' in stderr
    assert not os.path.exists(os.path.join(out, 'graph.pb'))
    assert not os.path.exists(os.path.join(out, 'labels.txt'))
    leftovers = [name for _, _, files in os.walk(out) for name in files if '.tmp-' in name]
    assert not leftovers


class _EndlessFeatureVector(tf.Module):
    """The feature-vector interface, but the call never returns (a loop TensorFlow runs)."""

    def __init__(self):
        super().__init__()
        self.__call__ = tf.function(
            self._features, input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])

    def _features(self, images):
        forever = tf.while_loop(lambda x: x >= 0.0, lambda x: x + 1.0, [tf.constant(0.0)])[0]
        return tf.reduce_mean(images, axis=[1, 2]) + 0.0 * forever


def test_ctrl_c_ends_retrain_inside_a_model_that_never_returns(tmp_path):
    """Python cannot raise KeyboardInterrupt inside TensorFlow's loop: the watchdog ends the run
    with its line and exit 130, and leaves nothing behind."""
    module = str(tmp_path / 'endless')
    tf.saved_model.save(_EndlessFeatureVector(), module)
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=3)
    out = str(tmp_path / 'out')
    process = _start_retrain(retrain_args(image_dir, module, out, 5))
    try:
        for line in process.stderr:
            if 'Loading module' in line:
                break
        time.sleep(1)  # Into the module's first call, which never returns.
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        'retrain: interrupted; outputs already complete were kept, nothing is half-written')
    assert 'Traceback' not in stderr
    assert not os.path.exists(out) or not [
        name for _, _, files in os.walk(out) for name in files if not name.startswith('events')]


def test_odd_file_names_are_cached_under_short_names_and_the_run_goes_on(tiny_module, tmp_path):
    """Names too long for a cache file name, and file and folder names that are not UTF-8."""
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=20)
    red, green = os.fsencode(os.path.join(image_dir, 'red')), os.fsencode(image_dir) + b'/green'
    odd_class = os.fsencode(image_dir) + b'/caf\xe9'
    try:
        os.makedirs(odd_class)
        for name in sorted(os.listdir(green))[:20]:
            shutil.copy(os.path.join(green, name), os.path.join(odd_class, name))
        for name in (b'L' * 240 + b'.jpg', b'bad\xff.jpg'):
            shutil.copy(os.path.join(red, b'red_000.jpg'), os.path.join(red, name))
    except OSError as e:  # macOS file systems refuse names that are not valid UTF-8.
        pytest.skip(f'this file system refuses names that are not UTF-8: {e}')
    out = str(tmp_path / 'out')
    args = retrain_args(image_dir, tiny_module, out, 10)
    first = run_module('retrain', *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'Traceback' not in first.stderr and 'Skipping' not in first.stderr
    with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
        assert f.read().splitlines() == ['blue', 'caf ', 'green', 'red']
    suffix = hub_cache_suffix(tiny_module)
    names = [name for folder, _, files in os.walk(os.path.join(out, 'bn')) for name in files
             if name.endswith('.txt')]
    assert len(names) == 82
    assert max(len(name.encode('utf-8')) for name in names) <= 255 - len('..tmp-') - 12
    long_name, = [n for n in names if n.startswith('L')]
    assert re.fullmatch('L' * (237 - len(f'~0123456789abcdef{suffix}.txt')) + r'~[0-9a-f]{16}'
                        + re.escape(suffix) + r'\.txt', long_name), long_name
    assert any(re.fullmatch(r'bad_\.jpg~[0-9a-f]{16}' + re.escape(suffix) + r'\.txt', n)
               for n in names)
    second = run_module('retrain', *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert '82 bottlenecks cached in' in second.stderr and ', 0 to compute' in second.stderr
