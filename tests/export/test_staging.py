"""All-or-nothing outputs (retrain/export/staging.py), through the real CLIs: every output path
checked before any work, nothing removed that the tools did not write, and after a failure, a full
disk or Ctrl-C either every output is the new run's or every output is as it was."""
import importlib.util
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from retrain.common import interrupts
from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.data.image_lists import which_set
from retrain.export import staging

import graph_builders as gb
from conftest import (
    TinyFeatureVector,
    make_image_folder,
    retrain_args,
    run_module,
    start_module,
    tflite_interpreter,
)
from messy_images import messy_files

v1 = tf.compat.v1
OLD = {'graph.pb': b'old graph', 'model.tflite': b'old tflite', 'labels.txt': b'old\n',
       os.path.join('sm', 'saved_model.pb'): b'old saved model'}
# Each output flag and the file under `out` that tells an old output from a new one.
OUTPUT_FLAGS = {'--output_graph': 'graph.pb', '--tflite_output_file': 'model.tflite',
                '--output_labels': 'labels.txt', '--saved_model_dir': 'sm'}
# The ONNX file joins every run of these tests where the onnx extra is installed.
ONNX = importlib.util.find_spec('tf2onnx') is not None
if ONNX:
    OLD['model.onnx'] = b'old onnx'
    OUTPUT_FLAGS['--onnx_output_file'] = 'model.onnx'


def _one_line_error(result, program='retrain', code=1):
    assert result.returncode == code, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith(program)]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _tree(root):
    """Every file and folder under `root` with the content of each file."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):  # Where it points, even nowhere.
                found[os.path.relpath(path, root)] = os.readlink(path)
                continue
            with open(path, 'rb') as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def _leftovers(*roots):
    return [os.path.join(folder, name) for root in roots for folder, dirs, files in os.walk(root)
            for name in dirs + files if name.startswith(('.tmp-', '.old-', '.probe-'))]


@pytest.fixture
def tmpfs():
    """mount(path, options): a tmpfs there (root only; skips where mounting is impossible)."""
    mounted = []

    def mount(path, options='size=1m'):
        os.makedirs(path, exist_ok=True)
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', path],
                                capture_output=True, text=True, check=False)
        if result.returncode:
            pytest.skip(f'cannot mount a tmpfs here: {result.stderr.strip()}')
        mounted.append(path)
        return path
    yield mount
    for path in reversed(mounted):
        subprocess.run(['umount', path], check=True)


def _remount_read_only(path):
    subprocess.run(['mount', '-o', 'remount,ro', path], check=True)


def _output_args(image_dir, module, out, *extra):
    """A run with every output flag, all below `out`, and a cache shared by the test's runs."""
    return retrain_args(image_dir, module, out, 10, '--summaries_dir', '',
                        '--tflite_output_file', os.path.join(out, 'model.tflite'),
                        '--saved_model_dir', os.path.join(out, 'sm'),
                        *(('--onnx_output_file', os.path.join(out, 'model.onnx')) if ONNX else ()),
                        *extra)


# ---- 1. Checked before any work -------------------------------------------------------------

def _bad_path(case, tmp_path, tmpfs, name):
    """A path for an output named `name` that cannot be written, and what the error says."""
    if case == 'folder':
        os.makedirs(tmp_path / 'out' / name)
        return str(tmp_path / 'out' / name), 'is a folder, not a file'
    if case == 'file':
        (tmp_path / 'out').mkdir(exist_ok=True)
        (tmp_path / 'out' / name).write_bytes(b'a file of the user')
        return str(tmp_path / 'out' / name), 'is a file, not a folder'
    if case == 'parent_file':
        (tmp_path / 'blocker').write_bytes(b'a file of the user')
        return str(tmp_path / 'blocker' / 'sub' / name), 'is a file, not a folder'
    if case == 'read_only':
        read_only = tmpfs(str(tmp_path / 'read_only'))
        _remount_read_only(read_only)
        return os.path.join(read_only, name), 'not writable'
    if case == 'link_to_read_only':  # Written where the link points: checked there too.
        read_only = tmpfs(str(tmp_path / 'read_only'))
        _remount_read_only(read_only)
        (tmp_path / 'out').mkdir(exist_ok=True)
        os.symlink(os.path.join(read_only, name), tmp_path / 'out' / name)
        return str(tmp_path / 'out' / name), 'not writable'
    if case == 'long_name':  # Once refused only when written, after caching and training.
        return str(tmp_path / 'out' / ('L' * 300) / name), 'over the 255 that file systems take'
    raise ValueError(case)


EARLY_CASES = [(flag, case) for flag in ('--output_graph', '--output_labels',
                                         '--tflite_output_file', *(('--onnx_output_file',)
                                                                   if ONNX else ()))
               for case in ('folder', 'parent_file', 'read_only', 'link_to_read_only',
                            'long_name')] + [
    (flag, case) for flag in ('--saved_model_dir', '--summaries_dir',
                              '--intermediate_output_graphs_dir')
    for case in ('file', 'parent_file', 'read_only', 'long_name')] + [
    ('--saved_model_dir', 'link_to_read_only')] + [
    ('--bottleneck_dir', case) for case in ('file', 'parent_file')]


@pytest.mark.parametrize('flag,case', EARLY_CASES)
def test_check_run_refuses_an_output_that_cannot_be_written(flag, case, tmp_path, tmpfs):
    """Every output kind and every way it can be unwritable, against the check the CLI runs
    before any work (the CLI's side: the test below)."""
    path, reason = _bad_path(case, tmp_path, tmpfs, 'target')
    before = _tree(str(tmp_path))
    out = str(tmp_path / 'out')
    config = RetrainConfig(**{  # All other outputs can be written: only `flag` is refused.
        'output_graph': os.path.join(out, 'graph.pb'),
        'output_labels': os.path.join(out, 'labels.txt'),
        'summaries_dir': os.path.join(out, 'summaries'),
        'intermediate_output_graphs_dir': os.path.join(out, 'intermediate'),
        'intermediate_store_frequency': 5, flag.lstrip('-'): path})
    with pytest.raises(ToolError) as refused:
        staging.check_run(config)
    assert path in str(refused.value) and reason in str(refused.value), refused.value
    assert _tree(str(tmp_path)) == before  # Nothing written, nothing removed.


def test_a_read_only_bottleneck_dir_is_not_refused(tmp_path, tmpfs):
    """A full cache on a read-only disk is only read; a missing file is refused when written."""
    cache = tmpfs(str(tmp_path / 'cache'))
    _remount_read_only(cache)
    out = str(tmp_path / 'out')
    staging.check_run(RetrainConfig(output_graph=os.path.join(out, 'graph.pb'),
                                    output_labels=os.path.join(out, 'labels.txt'),
                                    summaries_dir='', bottleneck_dir=cache))


def test_a_failed_write_removes_the_folders_made_for_it_and_only_those(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    with pytest.raises(ToolError, match='the writer failed'):
        with staging.staged() as stage:
            with stage.output(str(out / 'new' / 'deep' / 'graph.pb')) as temp:
                assert os.path.isdir(os.path.dirname(temp))
                with stage.output(str(out / 'kept' / 'labels.txt')):
                    (out / 'kept' / 'a file of the user').write_bytes(b'')
                raise ToolError('the writer failed')
    assert sorted(os.listdir(out)) == ['kept']
    assert os.listdir(out / 'kept') == ['a file of the user']


def test_a_failed_move_names_its_own_output_and_puts_back_the_others(tmp_path):
    """The error once named the last output put back (here a.txt), not the one that failed."""
    (tmp_path / 'a.txt').write_text('old', encoding='utf-8')
    with pytest.raises(ToolError) as failed:
        with staging.staged() as stage:
            for name in ('a.txt', 'b.txt'):
                with stage.output(str(tmp_path / name)) as temp:
                    with open(temp, 'w', encoding='utf-8') as f:
                        f.write('new')
            os.remove(temp)  # b.txt's temporary is gone when the outputs are moved.
    assert str(failed.value).startswith(f'cannot write {tmp_path / "b.txt"}: ')
    assert os.listdir(tmp_path) == ['a.txt']
    assert (tmp_path / 'a.txt').read_text(encoding='utf-8') == 'old'


def test_an_output_name_of_255_bytes_is_staged_beside_it_and_moved_into_place(tmp_path):
    target = str(tmp_path / ('L' * 251 + '.txt'))
    staging.check_file(target)
    with staging.staged() as stage:
        with stage.output(target) as temp:
            assert temp.endswith('.txt') and len(os.path.basename(temp)) == 255
            with open(temp, 'w', encoding='utf-8') as f:
                f.write('labels\n')
    assert os.listdir(tmp_path) == [os.path.basename(target)]


@pytest.mark.parametrize('flag,case', [('--output_graph', 'read_only'),
                                       ('--intermediate_output_graphs_dir', 'parent_file')])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(flag, case, image_dir,
                                                                     tiny_module, tmp_path,
                                                                     tmpfs):
    path, reason = _bad_path(case, tmp_path, tmpfs, 'target')
    before = _tree(str(tmp_path))
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 10, flag, path,
                                                 '--intermediate_store_frequency', '5'))
    error = _one_line_error(result)
    assert path in error and reason in error, error
    assert not os.path.exists(os.path.join(out, 'bn'))  # Nothing was cached.
    assert _tree(str(tmp_path)) == before  # Nothing written, nothing removed.


def test_an_output_on_a_photo_or_a_label_file_is_refused_and_both_are_kept(tiny_module,
                                                                           tmp_path):
    """The photo or the image's label file an output path names stays as it was: exit 2."""
    image_dir = make_image_folder(str(tmp_path / 'images'), per_class=3)
    photo = os.path.join(image_dir, 'red', sorted(os.listdir(os.path.join(image_dir, 'red')))[0])
    labels_dir = tmp_path / 'lab'
    labels_dir.mkdir()
    label_file = labels_dir / (os.path.basename(photo) + '.txt')
    label_file.write_text('red\n', encoding='utf-8')
    before = _tree(str(tmp_path))
    for target, extra in ((photo, ()), (str(label_file), ('--multi_label', '--image_labels_dir',
                                                           str(labels_dir)))):
        for flag in ('--output_labels', '--output_graph', '--tflite_output_file'):
            result = run_module('retrain', *_output_args(image_dir, tiny_module,
                                                         str(tmp_path / 'out'), *extra),
                                flag, target)
            assert result.returncode == 2, result.stderr[-3000:]
            (line,) = result.stderr.splitlines()  # Refused before TensorFlow loads: quietly.
            assert line.startswith('retrain: error: ') and 'which the run reads' in line
    assert _tree(str(tmp_path)) == before


@pytest.mark.parametrize('flag', ['--report_dir', '--output_graph', '--output_labels',
                                  '--summaries_dir', '--bottleneck_dir', '--saved_model_dir'])
def test_an_output_whose_name_is_not_utf8_is_a_usage_error(flag, image_dir, tiny_module,
                                                            tmp_path):
    target = os.path.join(str(tmp_path), os.fsdecode(b'out\xff'))
    process = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5,
                                                  flag, target))
    assert process.returncode == 2
    assert 'Traceback' not in process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        f'retrain: error: {flag} {tmp_path}{os.sep}out\\xff is not a UTF-8 name, which '
        'TensorFlow cannot write to; choose another')
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('where', ['given by its path', 'the current folder'])
def test_saved_model_dir_holding_other_files_is_refused_and_kept(where, image_dir, tiny_module,
                                                                 tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('my notes')
    (out / 'saved_model.pb').write_bytes(b'looks like a SavedModel, but with notes beside it')
    before = _tree(str(out))
    args = retrain_args(image_dir, tiny_module, str(tmp_path / 'run'), 10, '--saved_model_dir',
                        str(out) if where == 'given by its path' else '.')
    result = run_module('retrain', *args, cwd=str(out))
    error = _one_line_error(result, code=2)  # As a --report_dir holding other files.
    assert 'will not replace' in error and 'notes.txt' in error, error
    assert _tree(str(out)) == before


def test_only_a_saved_model_is_replaced_and_only_event_files_are_cleared(image_dir, tiny_module,
                                                                         tmp_path):
    out = tmp_path / 'out'
    summaries = out / 'summaries'
    kept = {'notes.txt': b'my notes', os.path.join('train', 'keep.txt'): b'mine',
            os.path.join('other', 'events.out.tfevents.1.host'): b'not a run of retrain'}
    cleared = [os.path.join('train', 'events.out.tfevents.1.host'),
               os.path.join('validation', 'events.out.tfevents.1.host.v2')]
    for name, data in list(kept.items()) + [(name, b'old') for name in cleared]:
        os.makedirs(os.path.dirname(summaries / name), exist_ok=True)
        (summaries / name).write_bytes(data)
    os.makedirs(out / 'sm' / 'variables')
    (out / 'sm' / 'saved_model.pb').write_bytes(OLD[os.path.join('sm', 'saved_model.pb')])
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(out), 10,
                                                 '--saved_model_dir', str(out / 'sm')))
    assert result.returncode == 0, result.stderr[-3000:]
    for name, data in kept.items():
        assert (summaries / name).read_bytes() == data, name
    for name in cleared:
        assert not (summaries / name).exists(), name
    for run in ('train', 'validation'):
        assert [n for n in os.listdir(summaries / run) if n.startswith('events.out.tfevents.')]
    assert {'saved_model.pb', 'variables'} <= set(os.listdir(out / 'sm'))
    loaded = tf.saved_model.load(str(out / 'sm'))
    assert 'serving_default' in loaded.signatures
    assert not _leftovers(str(out))


def test_outputs_named_by_symbolic_links_are_written_where_they_point(image_dir, tiny_module,
                                                                    warm_cache, tmp_path):
    real, out = tmp_path / 'real', tmp_path / 'out'
    _write_old_outputs(str(real))
    os.makedirs(real / 'report')
    os.makedirs(out)
    for name in [*OUTPUT_FLAGS.values(), 'report']:
        os.symlink(os.path.join('..', 'real', name), out / name)
    outputs = [arg for flag, name in OUTPUT_FLAGS.items() for arg in (flag, str(out / name))]
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5,
                                                 '--bottleneck_dir', warm_cache, *outputs,
                                                 '--report_dir', str(out / 'report')))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out)) == sorted([*OUTPUT_FLAGS.values(), 'report'])
    for name in os.listdir(out):
        assert os.path.islink(out / name), name
    for name in OUTPUT_FLAGS.values():
        assert _state(str(real / name), name) == 'new', name
    assert {'index.html', 'report.json'} <= set(os.listdir(real / 'report'))
    assert json.loads((real / 'report' / 'report.json').read_text())
    assert not _leftovers(str(real))


# ---- 3. All or nothing -----------------------------------------------------------------------

def _write_old_outputs(out, names=tuple(OLD)):
    for name in names:
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(OLD[name])
    if os.path.join('sm', 'saved_model.pb') in names:
        os.makedirs(os.path.join(out, 'sm', 'variables'), exist_ok=True)


def _state(path, name):
    """'old' while `path` holds the old output `name`, 'new' once a run replaced it."""
    marker, old = ((os.path.join(path, 'saved_model.pb'), OLD[os.path.join('sm', 'saved_model.pb')])
                   if name == 'sm' else (path, OLD[name]))
    if not os.path.exists(marker):
        return 'missing'
    with open(marker, 'rb') as f:
        return 'old' if f.read() == old else 'new'


@pytest.fixture(scope='module')
def warm_cache(image_dir, tiny_module, tmp_path_factory):
    """A filled bottleneck cache, so that the runs of these tests go straight to training."""
    out = str(tmp_path_factory.mktemp('warm'))
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 1, '--summaries_dir',
                                                 ''))
    assert result.returncode == 0, result.stderr[-3000:]
    return os.path.join(out, 'bn')


@pytest.mark.parametrize('flag', list(OUTPUT_FLAGS))
def test_full_disk_at_any_output_leaves_every_output_as_it_was(flag, image_dir, tiny_module,
                                                               warm_cache, tmp_path, tmpfs):
    out, full = str(tmp_path / 'out'), tmpfs(str(tmp_path / 'full'))
    name = OUTPUT_FLAGS[flag]
    _write_old_outputs(out)
    _write_old_outputs(full, [n for n in OLD if n.split(os.sep)[0] == name])
    with open(os.path.join(full, 'filler'), 'wb', buffering=0) as f:  # Fill it to the last byte.
        with pytest.raises(OSError):
            while True:
                f.write(b'\0' * 4096)
    target = os.path.join(full, name)
    args = _output_args(image_dir, tiny_module, out, '--bottleneck_dir', warm_cache, flag, target)
    result = run_module('retrain', *args)
    error = _one_line_error(result)
    assert f'cannot write {target}' in error, error
    states = {f: _state(os.path.join(full if f == flag else out, n), n)
              for f, n in OUTPUT_FLAGS.items()}
    assert set(states.values()) == {'old'}, states
    assert not _leftovers(out, full)


def test_full_disk_while_caching_is_one_line_naming_the_cache_file(image_dir, tiny_module,
                                                                    tmp_path, tmpfs):
    """Not the temporary's name that TensorFlow's message holds: the file the run was writing."""
    full = tmpfs(str(tmp_path / 'full'), 'size=64k')  # Room for a few of the 90 cache files.
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 10,
                                                 '--bottleneck_dir', full))
    error = _one_line_error(result)
    cache_file = re.escape(full) + r'[/\\](blue|green|red)[/\\]\w+\.(jpg|png)_[^/\\]+\.txt'
    assert re.fullmatch(f'retrain: error: cannot write {cache_file}: No space left on device',
                        error), error
    assert not _leftovers(full) and not os.path.exists(out)


def test_full_disk_under_the_summaries_is_one_line_naming_the_event_file(image_dir, tiny_module,
                                                                          warm_cache, tmp_path,
                                                                          tmpfs):
    """Once a traceback from the event-file writer, in retrain and make_image_classifier (whose
    epochs write through the same StepWriter)."""
    full = tmpfs(str(tmp_path / 'full'))
    with open(os.path.join(full, 'filler'), 'wb', buffering=0) as f:  # Fill it to the last byte.
        with pytest.raises(OSError):
            while True:
                f.write(b'\0' * 4096)
    summaries = os.path.join(full, 'summaries')
    error = _one_line_error(run_module('retrain', *retrain_args(
        image_dir, tiny_module, str(tmp_path / 'out'), 20, '--bottleneck_dir', warm_cache,
        '--summaries_dir', summaries)))
    assert re.fullmatch('retrain: error: cannot write TensorBoard summaries to '
                        rf'{re.escape(summaries)}[/\\]train[/\\]events[^ ]*: No space left on '
                        'device', error), error


def _changed_or_staged(folder, name):
    """True once the run has begun writing output `name` in `folder`: a temporary of it is
    there, or it has been replaced."""
    return (any(n.startswith('.') and n.endswith(name) for n in os.listdir(folder))
            or _state(os.path.join(folder, name), name) != 'old')


@pytest.mark.parametrize('flag', list(OUTPUT_FLAGS))
def test_ctrl_c_while_writing_any_output_leaves_all_old_or_all_new(flag, image_dir, tiny_module,
                                                                   warm_cache, tmp_path):
    out = str(tmp_path / 'out')
    _write_old_outputs(out)
    with open(tmp_path / 'stderr.txt', 'w', encoding='utf-8') as stderr:
        process = start_module(
            'retrain', *_output_args(image_dir, tiny_module, out, '--bottleneck_dir', warm_cache),
            env_extra={'TF_CPP_MIN_LOG_LEVEL': '2'}, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None and not _changed_or_staged(out, OUTPUT_FLAGS[flag]):
            time.sleep(0.01)  # Polls for the run reaching this output; it ends if it never does.
        process.send_signal(signal.SIGINT)
        process.wait()
    log = (tmp_path / 'stderr.txt').read_text(encoding='utf-8')
    assert process.returncode in (0, 130), log[-3000:]
    assert 'Traceback' not in log
    states = {n: _state(os.path.join(out, n), n) for n in OUTPUT_FLAGS.values()}
    assert len(set(states.values())) == 1, states
    assert not _leftovers(out)


def test_a_ctrl_c_swallowed_while_writing_still_stops_the_run_and_leaves_nothing(tmp_path):
    """TensorFlow's finalizers can swallow the KeyboardInterrupt of a Ctrl-C that lands while an
    output is written; the staging must still see it, move nothing and remove its temporaries."""
    earlier = signal.signal(signal.SIGINT, signal.default_int_handler)  # As in a CLI at a terminal
    interrupts.install()  # (a pytest-xdist worker ignores SIGINT).
    target = str(tmp_path / 'graph.pb')
    try:
        with pytest.raises(KeyboardInterrupt):
            with staging.staged() as stage:
                with stage.output(target) as temp:
                    with open(temp, 'wb') as f:
                        f.write(b'new graph')
                    try:
                        os.kill(os.getpid(), signal.SIGINT)
                        time.sleep(1)  # The handler raises here, at the latest.
                    except KeyboardInterrupt:
                        pass  # Swallowed, as a finalizer would.
    finally:
        signal.signal(signal.SIGINT, earlier)
        interrupts._requested.clear()
    assert os.listdir(tmp_path) == []


# ---- 12. int8 calibration with --allow_truncated_images ---------------------------------------

def test_int8_calibration_uses_truncated_training_images_as_caching_did(tiny_module, tmp_path):
    make_image_folder(str(tmp_path / 'images'), per_class=12)
    truncated = next(data for name, data, _ in messy_files() if name == 'truncated.jpg')
    in_training = 0
    for index in range(12):  # The split hashes the path as given: relative, fixed by this test.
        name = f'cut_{index}.jpg'
        if which_set(os.path.join('images', 'red', name), 10, 10) == 'training':
            (tmp_path / 'images' / 'red' / name).write_bytes(truncated)
            in_training += 1
    assert in_training
    result = run_module('retrain', *retrain_args('images', tiny_module, 'out', 10,
                                                 '--allow_truncated_images', '--summaries_dir', '',
                                                 '--tflite_output_file', 'out/model.tflite',
                                                 '--tflite_quantize', 'int8'),
                        cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Skipping' not in result.stderr
    interpreter = tflite_interpreter(model_path=str(tmp_path / 'out' / 'model.tflite'))
    assert any(d['dtype'] == np.int8 for d in interpreter.get_tensor_details())


# ---- 15. A model that cannot be frozen --------------------------------------------------------

class CountingFeatureVector(TinyFeatureVector):
    """The tiny module counting its calls in a variable: it runs, but cannot be frozen."""

    def __init__(self):
        super().__init__()
        self.calls = tf.Variable(0.0)
        self.__call__ = tf.function(self._counted, input_signature=[
            tf.TensorSpec([None, 32, 32, 3], tf.float32)])

    def _counted(self, images):
        self.calls.assign_add(1.0)
        return self._features(images)


def test_a_model_that_cannot_be_frozen_is_refused_before_caching(image_dir, tmp_path):
    module = str(tmp_path / 'counting')
    tf.saved_model.save(CountingFeatureVector(), module)
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(image_dir, module, out, 10))
    error = _one_line_error(result)
    assert module in error and 'cannot be frozen' in error, error
    assert not os.path.exists(os.path.join(out, 'bn'))
    assert not os.path.exists(os.path.join(out, 'graph.pb'))


# ---- 1. compat convert ------------------------------------------------------------------------

def test_compat_convert_refuses_the_current_folder_and_removes_nothing(tmp_path):
    gb.save(gb.poets_like(), str(tmp_path / 'graph.pb'))
    gb.write_labels(str(tmp_path / 'labels.txt'))
    (tmp_path / 'notes.txt').write_text('my notes')
    before = _tree(str(tmp_path))
    result = run_module('compat', 'convert', 'graph.pb', '--labels', 'labels.txt',
                        '--saved_model_dir', '.', cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        'python -m compat: error: GRAPH (graph.pb) is inside --saved_model_dir (.), a folder '
        'the run replaces whole: put it elsewhere')
    assert _tree(str(tmp_path)) == before


def _noisy_graph():
    """A Hub-era classifier whose scores change from run to run: no conversion can match it."""
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, gb.SIZE, gb.SIZE, 3], name='Placeholder')
        logits = (tf.reduce_mean(images, axis=[1, 2])[:, :1] * tf.ones([1, gb.CLASSES])
                  + tf.random.uniform([1, gb.CLASSES], 0.0, 10.0))
        tf.nn.softmax(logits, name='final_result')
    return graph.as_graph_def()


def test_compat_convert_keeps_the_saved_model_it_would_replace_after_a_failed_check(tmp_path):
    graph = gb.save(_noisy_graph(), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    _write_old_outputs(str(tmp_path), [os.path.join('sm', 'saved_model.pb')])
    before = _tree(str(tmp_path / 'sm'))
    result = run_module('compat', 'convert', graph, '--labels', labels, '--saved_model_dir',
                        str(tmp_path / 'sm'), '--allow_unsafe_ops')
    error = _one_line_error(result, 'python -m compat convert')
    assert 'gives different scores' in error, error
    assert _tree(str(tmp_path / 'sm')) == before
    assert not _leftovers(str(tmp_path))
