"""`python -m retrain` end to end, as a subprocess, on a tiny module and tiny image folders."""
import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf

from retrain.data import image_io, image_lists
from retrain.features.hub_module import hub_cache_suffix

import graph_builders as gb
from conftest import (
    REPO_ROOT,
    fixed_split,
    make_image_folder,
    retrain_args,
    run_module,
    start_module,
    tflite_interpreter,
    write_image,
)


def _final_accuracy(stderr: str) -> float:
    match = re.search(r'Final test accuracy = ([\d.]+)% \(N=(\d+)\)', stderr)
    assert match, stderr[-3000:]
    return float(match.group(1))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_module, image_dir):
    """One full run; the tests below inspect what it wrote and logged."""
    out = tmp_path_factory.mktemp('run')
    paths = {name: str(out / name) for name in ('bottlenecks', 'summaries', 'intermediate')}
    paths.update(graph=str(out / 'graph.pb'), labels=str(out / 'labels.txt'),
                 saved_model=str(out / 'saved_model'), tflite=str(out / 'model.tflite'))
    cwd, relative_images = fixed_split(image_dir)
    args = ['--image_dir', relative_images, '--tfhub_module', tiny_module,
            f'--bottleneck_dir={paths["bottlenecks"]}', '--output_graph', paths['graph'],
            '--output_labels', paths['labels'], '--summaries_dir', paths['summaries'],
            '--saved_model_dir', paths['saved_model'], '--tflite_output_file', paths['tflite'],
            '--how_many_training_steps', '120',
            '--learning_rate', '0.5', '--intermediate_store_frequency', '50',
            '--intermediate_output_graphs_dir', paths['intermediate'],
            '--print_misclassified_test_images', '--random_seed', '3']
    result = run_module('retrain', *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(paths, args=args, cwd=cwd, result=result, module=tiny_module, image_dir=image_dir)


def test_logs_classic_lines_and_learns(trained):
    stderr = trained['result'].stderr
    for pattern in [r'\d{4}-\d\d-\d\d [\d:.]+: Step 0: Train accuracy = [\d.]+%',
                    r': Step 0: Cross entropy = \d+\.\d{6}',
                    r': Step 10: Validation accuracy = [\d.]+% \(N=\d+\)',
                    r': Step 119: Train accuracy',  # The last step is always reported.
                    '=== MISCLASSIFIED TEST IMAGES ===']:
        assert re.search(pattern, stderr), pattern
    assert _final_accuracy(stderr) >= 80.0  # Chance is 33%.


def _classic_split(path: str) -> float:
    """Classic retrain.py's rule, written out here: sha1 of the path as given, in [0, 100]."""
    hashed = int(hashlib.sha1(re.sub(r'_nohash_.*$', '', path).encode('utf-8')).hexdigest(), 16)
    return (hashed % (2 ** 27)) * (100.0 / (2 ** 27 - 1))


def test_test_set_is_the_classic_split(trained):
    """The test set holds the images that the classic hash of `colours/<class>/<file>` (the
    paths as the run was given them) puts below 10% (validation) + 10%."""
    folder = os.path.basename(trained['image_dir'])
    names = [os.path.join(folder, label, name) for label in ('blue', 'green', 'red')
             for name in os.listdir(os.path.join(trained['image_dir'], label))]
    expected = sum(10 <= _classic_split(name) < 20 for name in names)
    assert 0 < expected < len(names)
    assert re.search(rf'Final test accuracy = [\d.]+% \(N={expected}\)', trained['result'].stderr)


def test_labels_file(trained):
    with open(trained['labels'], 'rb') as f:
        assert f.read() == b'blue\ngreen\nred\n'


def test_cache_files_use_hub_naming_and_classic_format(trained):
    suffix = hub_cache_suffix(trained['module'])
    cached = os.path.join(trained['bottlenecks'], 'red', 'red_000.jpg' + suffix + '.txt')
    with open(cached) as f:
        text = f.read()
    assert '\n' not in text
    assert len([float(v) for v in text.split(',')]) == 19
    count = sum(name.endswith('.txt') for _, _, files in os.walk(trained['bottlenecks'])
                for name in files)
    assert count == 90


def _graph_session(path, name=''):
    graph_def = tf.compat.v1.GraphDef()
    with open(path, 'rb') as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name=name)
    return graph, tf.compat.v1.Session(graph=graph)


@pytest.mark.parametrize('scope', ['', 'import'])
def test_every_entry_point_gives_the_same_softmax(trained, scope):
    """Old client code of each generation: tf.compat.v1 import, sess.run on final_result:0."""
    image_path = os.path.join(trained['image_dir'], 'green', 'green_004.jpg')
    with open(image_path, 'rb') as f:
        jpeg = f.read()
    unit = image_io.load_image(image_path, (32, 32))[np.newaxis]
    centered = (unit * 255.0 - 128.0) / 128.0
    prefix = scope + '/' if scope else ''
    graph, session = _graph_session(trained['graph'], scope)
    output = prefix + 'final_result:0'
    with session:
        results = {
            'DecodeJpeg/contents': session.run(output, {prefix + 'DecodeJpeg/contents:0': jpeg}),
            'Placeholder': session.run(output, {prefix + 'Placeholder:0': unit}),
            'Mul': session.run(output, {prefix + 'Mul:0': centered}),
            'input': session.run(output, {prefix + 'input:0': centered}),
        }
        batch = session.run(output, {prefix + 'Placeholder:0': np.concatenate([unit, unit * 0.5])})
    reference = results['Placeholder']
    assert reference.shape == (1, 3)
    assert reference.argmax() == 1  # green
    for name, value in results.items():
        np.testing.assert_allclose(value, reference, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(batch[:1], reference, atol=1e-5)
    op_types = {node.op for node in graph.as_graph_def().node}
    assert not op_types & {'ReadFile', 'WriteFile', 'MatchingFiles', 'SaveV2', 'RestoreV2'}


def test_entry_point_node_names_are_exact(trained):
    graph, _ = _graph_session(trained['graph'])
    names = {op.name: op.type for op in graph.get_operations()}
    assert names['DecodeJpeg/contents'] == 'Placeholder'
    assert names['Mul'] == 'Mul'
    for name in ('Placeholder', 'input', 'input_1/BottleneckInputPlaceholder'):
        assert names[name] == 'PlaceholderWithDefault'
    assert names['final_result'] == 'Softmax'


def test_saved_model_signature(trained):
    loaded = tf.saved_model.load(trained['saved_model'])
    signature = loaded.signatures['serving_default']
    assert list(signature.structured_input_signature[1]) == ['image']
    image = image_io.load_image(os.path.join(trained['image_dir'], 'red', 'red_001.jpg'), (32, 32))
    prediction = signature(image=tf.constant(image[np.newaxis]))['prediction'].numpy()
    _, session = _graph_session(trained['graph'])
    with session:
        expected = session.run('final_result:0', {'Placeholder:0': image[np.newaxis]})
    np.testing.assert_allclose(prediction, expected, atol=1e-6)


def test_intermediate_graphs(trained):
    """Snapshots of the layer at steps 50 and 100: graphs that classify, each with the weights of
    its own step (scores differ from each other and from the final graph's)."""
    assert sorted(os.listdir(trained['intermediate'])) == ['intermediate_100.pb',
                                                           'intermediate_50.pb']
    unit = image_io.load_image(os.path.join(trained['image_dir'], 'blue', 'blue_002.jpg'),
                               (32, 32))[np.newaxis]
    scores = []
    for path in (os.path.join(trained['intermediate'], 'intermediate_50.pb'),
                 os.path.join(trained['intermediate'], 'intermediate_100.pb'), trained['graph']):
        _, session = _graph_session(path)
        with session:
            scores.append(session.run('final_result:0', {'Placeholder:0': unit})[0])
    for earlier, later in zip(scores, scores[1:]):
        assert not np.allclose(earlier, later, atol=1e-4), scores
    assert all(s.argmax() == 0 and s.sum() == pytest.approx(1, abs=1e-5) for s in scores[1:])


def _scalars(folder: str, tag: str):
    """(step, value) of every `tag` scalar in the event files of `folder`."""
    found = []
    for path in tf.io.gfile.glob(os.path.join(folder, 'events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            found += [(event.step, float(tf.make_ndarray(v.tensor) if v.HasField('tensor')
                                         else v.simple_value))
                      for v in event.summary.value if v.tag == tag]
    return sorted(found)


def test_summaries(trained):
    """Each evaluation (every 10 steps and the last) is in TensorBoard with the logged value."""
    stderr = trained['result'].stderr
    for sub, name in (('train', 'Train'), ('validation', 'Validation')):
        logged = [(int(step), float(value)) for step, value in
                  re.findall(rf'Step (\d+): {name} accuracy = ([\d.]+)%', stderr)]
        assert [step for step, _ in logged] == [*range(0, 120, 10), 119]
        written = _scalars(os.path.join(trained['summaries'], sub), 'accuracy')
        assert [step for step, _ in written] == [step for step, _ in logged], sub
        for (_, percent), (_, fraction) in zip(logged, written):
            assert fraction * 100 == pytest.approx(percent, abs=0.05), sub


def test_second_run_recomputes_and_rewrites_nothing(trained, tmp_path):
    before = {}
    for root, _, files in os.walk(trained['bottlenecks']):
        for name in files:
            path = os.path.join(root, name)
            before[path] = os.stat(path).st_mtime_ns
    args = list(trained['args'])
    args[args.index('--output_graph') + 1] = str(tmp_path / 'graph2.pb')
    result = run_module('retrain', *args, cwd=trained['cwd'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert '90 bottlenecks cached' in result.stderr and ', 0 to compute' in result.stderr
    assert 'Caching bottlenecks' not in result.stderr
    after = {path: os.stat(path).st_mtime_ns for path in before}
    assert after == before


def test_old_classic_cache_file_is_reused(tmp_path, tiny_module, image_dir):
    """A cache file written the classic way is used as-is: its values reach the training data."""
    from retrain.cache import bottleneck_files
    from retrain.features.hub_module import load_hub_module
    from retrain.tasks.single_label import examples_of

    extractor = load_hub_module(tiny_module)
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    target = next(c for c in classes if c.dir_name == 'blue')
    relative = target.training[0]
    cache_dir = str(tmp_path / 'bn')
    path = bottleneck_files.bottleneck_path(cache_dir, os.path.join(target.dir_name, relative),
                                            extractor.cache_suffix)
    os.makedirs(os.path.dirname(path))
    classic_values = [0.25 * i for i in range(extractor.bottleneck_size)]
    with open(path, 'w') as f:  # As the classic script wrote it: str() of each float, ','-joined.
        f.write(','.join(str(v) for v in classic_values))
    mtime = os.stat(path).st_mtime_ns
    data, skipped = bottleneck_files.load_or_compute(image_dir, examples_of(classes), cache_dir,
                                                     extractor)
    assert skipped == []
    row = data.paths['training'].index(os.path.join(image_dir, 'blue', relative))
    np.testing.assert_array_equal(data.features['training'][row], np.float32(classic_values))
    assert os.stat(path).st_mtime_ns == mtime


def test_unparsable_cache_file_is_recreated(tmp_path, tiny_module, image_dir):
    from retrain.cache import bottleneck_files
    from retrain.features.hub_module import load_hub_module
    from retrain.tasks.single_label import examples_of

    extractor = load_hub_module(tiny_module)
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    target = classes[0]
    path = bottleneck_files.bottleneck_path(
        str(tmp_path), os.path.join(target.dir_name, target.training[0]), extractor.cache_suffix)
    os.makedirs(os.path.dirname(path))
    with open(path, 'w') as f:
        f.write('0.1,0.2,not-a-number')
    bottleneck_files.load_or_compute(image_dir, examples_of(classes), str(tmp_path), extractor)
    image = image_io.load_image(os.path.join(image_dir, target.dir_name, target.training[0]),
                                extractor.image_size)
    np.testing.assert_allclose(bottleneck_files.read_bottleneck(path, extractor.bottleneck_size),
                               extractor(image[np.newaxis]).numpy()[0], rtol=1e-4, atol=1e-5)


def test_real_module_on_flower_photos(shared_dir, tmp_path):
    """The real MobileNet V2 module on 500 real photos: >= 80% after 500 steps.

    The split hashes the path as typed, so the folder is named as a user in the repo root types
    it (`../shared/...`). Typed as an absolute path, the same photos split differently and that
    test set is harder: even a fully converged linear probe scores 79% on it.
    """
    image_dir = os.path.relpath(os.path.join(shared_dir, 'data', 'flower_photos_small'), REPO_ROOT)
    result = run_module(
        'retrain', '--image_dir', image_dir,
        '--tfhub_module', os.path.join(shared_dir, 'models', 'mobilenet_v2_100_224_feature_vector'),
        '--how_many_training_steps', '500', '--bottleneck_dir', str(tmp_path / 'bn'),
        '--output_graph', str(tmp_path / 'g.pb'), '--output_labels', str(tmp_path / 'l.txt'),
        '--summaries_dir', str(tmp_path / 'sum'), '--random_seed', '1')
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'\(N=58\)', result.stderr)  # The classic split of this path.
    assert _final_accuracy(result.stderr) >= 80.0


# --- The command line: usage errors, Ctrl-C, what the README promises, a readable log ------------

_TIMESTAMP = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d')


def test_help_exits_0_and_lists_the_flags():
    result = run_module('retrain', '--help')
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith('Retrains the last layer of an image model on folders of '
                                    'your own images.\n\nusage: retrain --image_dir DIR [flags]')
    for flag in ('--image_dir', '--how_many_training_steps', '--tflite_quantize', '--random_seed'):
        assert flag in result.stdout, flag
    assert '0: only fill the bottleneck cache' in ' '.join(result.stdout.split())


@pytest.mark.parametrize('module', ['retrain', 'label_image', 'compat'])
def test_a_reader_that_left_ends_the_tool_quietly(module, tmp_path):
    """`retrain --help | head -1`: the pipe's reader is gone before the tool writes (its end is
    closed first), so the first write fails; once a traceback, now exit code 1 and no word."""
    args = ['--help']
    if module != 'retrain':  # Their --help is argparse's, which ignores write errors itself.
        graph = gb.save(gb.hub_like(), str(tmp_path / 'graph.pb'))
        image = str(tmp_path / 'photo.jpg')
        write_image(image, (90, 120, 200), np.random.default_rng(0))
        args = (['inspect', graph] if module == 'compat' else
                ['--graph', graph, '--labels', gb.write_labels(str(tmp_path / 'labels.txt')),
                 image])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        child = start_module(module, *args, stdout=write_end, stderr=subprocess.PIPE,
                             text=True, encoding='utf-8')
    finally:
        os.close(write_end)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 1 and stderr == '', stderr[-3000:]


@pytest.mark.parametrize('bad, named', [
    (['--cache_batch_size', '0'], '--cache_batch_size'),
    (['--cache_batch_size', '-3'], '--cache_batch_size'),
    (['--learning_rate', 'nan'], '--learning_rate'),
    (['--learning_rate', 'abc'], '--learning_rate'),
    (['--fine_tune_learning_rate', 'inf'], '--fine_tune_learning_rate'),
    (['--testing_percentage', '-5'], '--testing_percentage'),
    (['--testing_percentage', '60', '--validation_percentage', '50'], '--validation_percentage'),
    (['--train_batch_size', '0'], '--train_batch_size must be -1 (all images) or at least 1'),
    (['--eval_step_interval', '0'], '--eval_step_interval'),
    (['--test_batch_size', '-2'], '--test_batch_size'),
    (['--how_many_training_steps', '-1'], '--how_many_training_steps'),
    (['--random_crop', '-10'], '--random_crop'),
    (['--random_seed', '-1'], '--random_seed'),
    (['--no_such_flag', '1'], 'no_such_flag'),
    (['--tflite_quantize', 'int4'], '--tflite_quantize'),
    (['unexpected', 'words'], 'unexpected words'),
    (['--image_labels_dir', 'labels'], '--image_labels_dir needs --multi_label'),
    (['--label_thresholds'], '--label_thresholds needs --multi_label'),
    (['--split_folders', '--testing_percentage', '10'], '--split_folders takes the split'),
    (['--image_dir=', '--image_labels_file', 'labels.csv'],
     '--image_labels_file needs --image_dir'),
])
def test_usage_errors_exit_2_with_one_line_before_any_work(tmp_path, tiny_module, image_dir,
                                                          bad, named):
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5, *bad))
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('retrain: error: '), result.stderr[-3000:]
    assert named in lines[0]
    assert os.listdir(tmp_path) == []  # Not even the bottleneck folder: no work was done.


def test_flags_without_effect_are_named_in_a_warning(tmp_path, tiny_module, image_dir):
    """They were dropped without a word: an empty --output_graph wrote no graph, exit 0."""
    result = run_module('retrain', *retrain_args(
        image_dir, tiny_module, str(tmp_path), 0, '--tflite_quantize', 'dynamic',
        '--beam_pipeline_options', '--direct_num_workers=1', '--output_graph='))
    assert result.returncode == 0, result.stderr[-3000:]
    for warning in ('--tflite_quantize has no effect without --tflite_output_file',
                    '--beam_pipeline_options has no effect without --beam_runner',
                    '--output_graph is empty: no graph is written'):
        assert warning in result.stderr, result.stderr[-3000:]
    assert '--output_labels is empty' not in result.stderr


def _interrupt_while_importing_tensorflow(tmp_path, module: str, *args: str):
    """Runs `python -m module args`, sends SIGINT once it is inside TensorFlow's import.

    The event to wait for: a `sitecustomize` on the child's path blocks the import of a module
    deep inside `import tensorflow` after creating a marker file; SIGINT ends the block as it
    would end the real (multi-second) import. Nothing in the tools knows about it.
    """
    hook_dir, marker = tmp_path / 'hook', tmp_path / 'importing_tensorflow'
    hook_dir.mkdir()
    (hook_dir / 'sitecustomize.py').write_text(
        'import importlib.abc, os, sys, threading\n'
        'class _Block(importlib.abc.MetaPathFinder):\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        "        if name == 'tensorflow.python.framework.ops':\n"
        "            open(os.environ['MARKER'], 'w').close()\n"
        '            threading.Event().wait()\n'
        'sys.meta_path.insert(0, _Block())\n')
    child = start_module(module, *args, cwd=str(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, encoding='utf-8', env_extra={
                             'MARKER': str(marker),
                             'PYTHONPATH': os.pathsep.join([str(hook_dir), REPO_ROOT,
                                                            os.environ.get('PYTHONPATH', '')])})
    try:
        while not marker.exists():
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)  # Polling for the marker: the wait ends on the event, not a time.
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, stderr


@pytest.mark.parametrize('command, interrupted', [
    (['retrain', '--image_dir', 'images', '--bottleneck_dir', 'bn', '--output_graph', 'g.pb',
      '--output_labels', 'l.txt', '--summaries_dir', ''],
     'retrain: interrupted; outputs already complete were kept, nothing is half-written'),
    (['label_image', '--graph', 'g.pb', '--labels', 'l.txt', 'photo.jpg'],
     'label_image: interrupted'),
    (['compat', 'inspect', 'g.pb'], 'python -m compat: interrupted'),
])
def test_ctrl_c_while_tensorflow_imports_is_one_line_and_exit_130(tmp_path, command, interrupted):
    returncode, stderr = _interrupt_while_importing_tensorflow(tmp_path, *command)
    assert returncode == 130, stderr[-3000:]
    assert stderr.strip() == interrupted


@pytest.mark.parametrize('command', [['label_image', '--no_such_flag', 'photo.jpg'],
                                     ['compat', 'inspect', 'g.pb', '--no_such_flag']])
def test_other_tools_exit_2_on_usage_errors_too(tmp_path, command):
    result = run_module(*command, cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'no_such_flag' in result.stderr and 'Traceback' not in result.stderr


def test_image_dir_that_is_a_file_is_called_a_file(tmp_path, tiny_module):
    not_a_folder = tmp_path / 'photos.zip'
    not_a_folder.write_bytes(b'PK')
    out = tmp_path / 'out'
    result = run_module('retrain', *retrain_args(str(not_a_folder), tiny_module, str(out), 5))
    assert result.returncode == 1, result.stderr[-3000:]
    (line,) = [text for text in result.stderr.splitlines() if text.startswith('retrain: error: ')]
    assert str(not_a_folder) in line and 'is a file' in line and 'not found' not in line


def test_zero_steps_only_fill_the_cache(tmp_path, tiny_module, image_dir):
    out = tmp_path / 'out'
    (out / 'summaries').mkdir(parents=True)
    (out / 'summaries' / 'earlier_run.txt').write_text('kept')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(out), 0,
                                                 '--saved_model_dir', str(out / 'sm')))
    assert result.returncode == 0, result.stderr[-3000:]
    cached = [name for _, _, files in os.walk(out / 'bn') for name in files
              if name.endswith('.txt')]
    assert len(cached) == 90
    assert sorted(os.listdir(out)) == ['bn', 'summaries']  # No graph, labels or SavedModel.
    assert os.listdir(out / 'summaries') == ['earlier_run.txt']  # Not even cleared.
    assert 'no model is trained or written' in result.stderr
    assert 'Final test accuracy' not in result.stderr


def test_final_tensor_name_tflite_quantize_and_quiet_verbosity(tmp_path, tiny_module, image_dir):
    out = tmp_path / 'out'
    result = run_module('retrain', *retrain_args(
        image_dir, tiny_module, str(out), 20, '--final_tensor_name', 'flower_scores',
        '--tflite_output_file', str(out / 'model.tflite'), '--tflite_quantize', 'int8',
        '--logging_verbosity', 'WARN'))
    assert result.returncode == 0, result.stderr[-3000:]
    logged = [line for line in result.stderr.splitlines() if _TIMESTAMP.search(line)]
    assert logged == [line for line in logged if line.startswith(('W ', 'E '))], logged  # No INFO.
    assert 'fully_quantize' not in result.stderr  # The quantizer's C++ line.
    graph, session = _graph_session(str(out / 'graph.pb'))
    names = {op.name: op.type for op in graph.get_operations()}
    assert names['flower_scores'] == 'Softmax' and 'final_result' not in names
    image = image_io.load_image(os.path.join(image_dir, 'red', 'red_001.jpg'), (32, 32))
    with session:
        scores = session.run('flower_scores:0', {'Placeholder:0': image[np.newaxis]})
    assert scores.argmax() == 2  # red
    assert 'unknown_score' in names  # The graph judges; the int8 file does not (clipped ranges).
    interpreter = tflite_interpreter(model_path=str(out / 'model.tflite'))
    assert any(t['dtype'] == np.int8 for t in interpreter.get_tensor_details())
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(given['index'], image[np.newaxis])
    interpreter.invoke()
    assert interpreter.get_tensor(taken['index'])[0].argmax() == 2


def test_without_image_dir_the_flower_photos_archive_in_the_cache_is_used(tmp_path, tiny_module):
    """Offline: the archive is placed where the download would put it ($RETRAIN_CACHE_DIR).

    The cache folder is given relative to a cwd this test controls, so the split is fixed."""
    make_image_folder(str(tmp_path / 'archive' / 'flower_photos'), per_class=20, seed=4)
    (tmp_path / 'cache').mkdir()
    with tarfile.open(tmp_path / 'cache' / 'flower_photos.tgz', 'w:gz') as tar:
        tar.add(tmp_path / 'archive' / 'flower_photos', arcname='flower_photos')
    args = retrain_args('', tiny_module, str(tmp_path / 'out'), 10, '--test_batch_size', '7')
    result = run_module('retrain', *args[2:], cwd=str(tmp_path),
                        env_extra={'RETRAIN_CACHE_DIR': 'cache'})
    assert result.returncode == 0, result.stderr[-3000:]
    expected_dir = os.path.join('cache', 'flower_photos', 'flower_photos')
    assert f'No --image_dir given: using the flower photos in {expected_dir}' in result.stderr
    assert re.search(r'Final test accuracy = [\d.]+% \(N=7\)', result.stderr)
    with open(tmp_path / 'out' / 'labels.txt', 'rb') as f:
        assert f.read() == b'blue\ngreen\nred\n'


def test_log_is_readable(trained):
    """One timestamp per line, no absl thread id or source location, no TensorFlow notices
    or temporary names; the classic lines' text as docs/COMPATIBILITY.md section 6 gives it.
    (TensorFlow's own modules log through absl too: the TFLite converter's INFO line.)"""
    stderr = trained['result'].stderr
    for noise in ('Instructions for updating', 'deprecat', '.tmp', 'tmp-', '.py:',
                  'experimental converter', 'file a bug'):
        assert noise not in stderr, noise
    logged = [line for line in stderr.splitlines() if _TIMESTAMP.search(line)]
    assert len(logged) > 30
    for line in logged:
        assert len(_TIMESTAMP.findall(line)) == 1, line
        assert re.match(r'[IWE] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}: \S', line), line
    assert re.search(r'^I [\d-]+ [\d:.]+: Step 0: Train accuracy = [\d.]+%$', stderr, re.M)
    assert re.search(r'^I [\d-]+ [\d:.]+: Step 119: Validation accuracy = [\d.]+% \(N=\d+\)$',
                     stderr, re.M)


def test_the_other_tools_print_no_tensorflow_notices(trained, tmp_path):
    """compat convert and label_image on retrain's outputs: their answer and nothing else."""
    converted = str(tmp_path / 'converted')
    result = run_module('compat', 'convert', trained['graph'], '--labels', trained['labels'],
                        '--saved_model_dir', converted)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ''
    assert result.stdout.startswith(f'wrote {converted}: ')
    image = os.path.join(trained['image_dir'], 'red', 'red_001.jpg')
    result = run_module('label_image', '--graph', converted, image)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ''
    lines = result.stdout.splitlines()
    assert lines[0] == image and lines[1].startswith('red (score = ')


def _bytes_test_images(image_dir):
    """A JPEG and a PNG of the run's images, and their scores as the frozen graph gives them
    through its own decoding entry point, DecodeJpeg/contents."""
    contents = []
    for name in ('red_001.jpg', 'red_009.png'):
        with open(os.path.join(image_dir, 'red', name), 'rb') as f:
            contents.append(f.read())
    return contents


def _decode_jpeg_scores(graph_path, contents):
    _, session = _graph_session(graph_path)
    with session:
        return np.concatenate([session.run('final_result:0', {'DecodeJpeg/contents:0': item})
                               for item in contents])


def test_saved_model_bytes_signature_on_jpeg_and_png(trained):
    """serving_bytes: encoded images in, the graph's scores and the label names out."""
    signature = tf.saved_model.load(trained['saved_model']).signatures['serving_bytes']
    (key, spec), = signature.structured_input_signature[1].items()
    assert key == 'image_bytes' and spec.dtype == tf.string and spec.shape.as_list() == [None]
    contents = _bytes_test_images(trained['image_dir'])
    result = signature(image_bytes=tf.constant(contents))
    expected = _decode_jpeg_scores(trained['graph'], contents)
    np.testing.assert_allclose(result['scores'].numpy(), expected, atol=1e-3)
    assert result['classes'].numpy().tolist() == [[b'blue', b'green', b'red']] * 2
    # serving_default is still there as before.
    assert 'serving_default' in tf.saved_model.load(trained['saved_model']).signatures


def test_saved_model_answers_a_rest_instances_request(trained):
    """TF Serving's REST row format: {"b64": ...} under an input key ending in _bytes is
    decoded for the signature, and each output must be batch-major to answer per instance."""
    contents = _bytes_test_images(trained['image_dir'])
    request = json.loads(json.dumps({'instances': [
        {'image_bytes': {'b64': base64.b64encode(item).decode('ascii')}} for item in contents]}))
    signature = tf.saved_model.load(trained['saved_model']).signatures['serving_bytes']
    inputs = {}
    for instance in request['instances']:
        for key, value in instance.items():
            assert key.endswith('_bytes')  # Only then does TF Serving decode b64 values.
            inputs.setdefault(key, []).append(base64.b64decode(value['b64']))
    outputs = {name: tensor.numpy() for name, tensor in
               signature(**{key: tf.constant(values) for key, values in inputs.items()}).items()}
    assert all(len(value) == 2 for value in outputs.values())
    predictions = [{name: value[i].tolist() for name, value in outputs.items()}
                   for i in range(2)]
    expected = _decode_jpeg_scores(trained['graph'], contents)
    for prediction, row in zip(predictions, expected):
        assert prediction['classes'] == [b'blue', b'green', b'red']
        np.testing.assert_allclose(prediction['scores'], row, atol=1e-3)


def test_saved_model_loads_as_a_keras_layer(trained):
    keras = pytest.importorskip('keras')
    contents = _bytes_test_images(trained['image_dir'])
    layer = keras.layers.TFSMLayer(trained['saved_model'], call_endpoint='serving_bytes')
    result = layer(tf.constant(contents))
    np.testing.assert_allclose(np.asarray(result['scores']),
                               _decode_jpeg_scores(trained['graph'], contents), atol=1e-3)
    assert np.asarray(result['classes'])[1].tolist() == [b'blue', b'green', b'red']
    images = np.stack([image_io.decode_and_resize(tf.constant(c), (32, 32)).numpy()
                       for c in contents])
    default = keras.layers.TFSMLayer(trained['saved_model'], call_endpoint='serving_default')
    np.testing.assert_allclose(np.asarray(default(tf.constant(images))['prediction']),
                               np.asarray(result['scores']), atol=1e-5)


def test_saved_model_writer_logs_no_notices_or_temporary_names(trained):
    stderr = trained['result'].stderr
    assert 'Instructions for updating' not in stderr
    assert '.tmp-' not in stderr
    assert f'Wrote SavedModel to {trained["saved_model"]}' in stderr
    size = os.path.getsize(trained['tflite'])
    assert f'Wrote TensorFlow Lite model (float, {size} bytes) to {trained["tflite"]}' in stderr
