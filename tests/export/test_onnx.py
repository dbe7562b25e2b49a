"""--onnx_output_file: the ONNX classifier keeps its contract (retrain.export.onnx_contract) and
gives the frozen graph's and the SavedModel's scores in ONNX Runtime, also where TensorFlow is not
installed; a run without the onnx extra is refused before any work. compat convert writes such
files from graphs of every generation; label_image and compat inspect read them."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from compat import classifier as models
from compat import onnx_model
from compat.graphs import graph_function
from compat.labels import read_labels
from retrain.common.errors import ToolError
from retrain.data import image_io, image_lists
from retrain.export import onnx_contract
from retrain.features.graph_files import load_graph_def

import graph_builders as gb
from conftest import (
    CLASS_COLOURS,
    REPO_ROOT,
    assert_judged_alike,
    label_image_blocks,
    make_image_folder,
    retrain_args,
    run_module,
    write_image,
)

onnx = pytest.importorskip('onnx', reason='the onnx extra is not installed')
pytest.importorskip('tf2onnx', reason='the onnx extra is not installed')
onnxruntime = pytest.importorskip('onnxruntime', reason='onnxruntime is not installed')


def _run(image_dir: str, module: str, out: str, steps: int, *extra: str) -> str:
    """A retrain run writing model.onnx and a SavedModel beside the graph; returns its log."""
    result = run_module('retrain', *retrain_args(
        image_dir, module, out, steps, '--summaries_dir', '', '--random_seed', '0',
        '--saved_model_dir', os.path.join(out, 'saved'),
        '--onnx_output_file', os.path.join(out, 'model.onnx'), *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


@pytest.fixture(scope='module')
def retrained(tmp_path_factory, image_dir, tiny_module):
    out = str(tmp_path_factory.mktemp('onnx'))
    return out, _run(image_dir, tiny_module, out, 30)


def _images(image_dir: str, size=(32, 32)) -> np.ndarray:
    paths = sorted(os.path.join(image_dir, c, f) for c in sorted(os.listdir(image_dir))
                   for f in sorted(os.listdir(os.path.join(image_dir, c))))
    return np.stack([image_io.load_image(p, size) for p in paths])


def _scores(out: str, images: np.ndarray):
    """(ONNX Runtime, frozen graph at Placeholder:0, SavedModel serving_default) scores."""
    session = onnxruntime.InferenceSession(os.path.join(out, 'model.onnx'),
                                           providers=['CPUExecutionProvider'])
    classify = graph_function(load_graph_def(os.path.join(out, 'graph.pb')), ['Placeholder:0'],
                              ['final_result:0'])
    serving = tf.saved_model.load(os.path.join(out, 'saved')).signatures['serving_default']
    return (session.run(None, {'image': images})[0], classify(tf.constant(images))[0].numpy(),
            serving(image=tf.constant(images))['prediction'].numpy())


def test_scores_are_the_graph_s_and_the_saved_model_s(retrained, image_dir):
    out, log = retrained
    images = _images(image_dir)
    scores, graph, saved = _scores(out, images)
    np.testing.assert_allclose(scores, graph, atol=1e-5)
    np.testing.assert_allclose(scores, saved, atol=1e-4)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # A softmax comes out.
    session = onnxruntime.InferenceSession(os.path.join(out, 'model.onnx'))
    one = session.run(None, {'image': images[:1]})[0]  # The batch is free: 1 or 90 images.
    np.testing.assert_allclose(one, scores[:1], atol=1e-6)
    size = os.path.getsize(os.path.join(out, 'model.onnx'))
    assert re.search(rf'Wrote ONNX model \(softmax scores, {size} bytes\) to .*model\.onnx$', log,
                     re.M)
    assert not [n for n in os.listdir(out) if n.startswith('.')]  # Staged, moved into place.



def test_the_file_judges_unknown_as_the_graph(retrained, image_dir):
    """A second output, unknown_score [N], the frozen graph's, as the contract says."""
    out, _ = retrained
    images = np.concatenate([_images(image_dir)[::15], np.random.default_rng(0).random(
        (3, 32, 32, 3), np.float32)])
    session = onnxruntime.InferenceSession(os.path.join(out, 'model.onnx'),
                                           providers=['CPUExecutionProvider'])
    assert [o.name for o in session.get_outputs()] == ['scores', 'unknown_score']
    judged = session.run(['unknown_score'], {'image': images})[0]
    classify = graph_function(load_graph_def(os.path.join(out, 'graph.pb')), ['Placeholder:0'],
                              ['unknown_score:0'])
    expected = classify(tf.constant(images))[0].numpy()
    assert_judged_alike(judged, expected)


def test_file_carries_its_contract(retrained):
    out, _ = retrained
    model = onnx.load(os.path.join(out, 'model.onnx'))
    onnx.checker.check_model(model, full_check=True)
    with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
        labels = f.read().splitlines()
    assert onnx_contract.read_metadata(model) == {
        'labels': '\n'.join(labels), 'image_size': '32,32', 'input_range': '0,1',
        'scores': 'softmax'}
    assert labels == sorted(CLASS_COLOURS)
    (given,), (taken, judged) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in given.type.tensor_type.shape.dim]
    assert (given.name, given.type.tensor_type.elem_type, dims) == (
        'image', onnx.TensorProto.FLOAT, ['N', 32, 32, 3])
    dims = [d.dim_param or d.dim_value for d in taken.type.tensor_type.shape.dim]
    assert (taken.name, dims) == ('scores', ['N', 3])
    dims = [d.dim_param or d.dim_value for d in judged.type.tensor_type.shape.dim]
    assert (judged.name, dims) == ('unknown_score', ['N'])
    assert model.producer_name == 'retrain' and 'classes' in model.doc_string
    assert onnx_contract.file_access_problem(model) == ''
    assert {o.domain: o.version for o in model.opset_import}.get('') == 13
    # No historical entry point travels along: no JPEG decoding, no (x - 128) / 128.
    assert not {n.op_type for n in model.graph.node} & {'DecodeJpeg', 'StringSplit'}
    assert len(model.graph.input) == 1


def test_multi_label_model_answers_a_sigmoid_per_label(tmp_path, tiny_module):
    images = make_image_folder(str(tmp_path / 'images'), per_class=10)
    out = str(tmp_path / 'out')
    log = _run(images, tiny_module, out, 20, '--multi_label', '--testing_percentage', '20',
               '--learning_rate', '0.05')  # Not yet saturated: sums that differ from 1.
    model = onnx.load(os.path.join(out, 'model.onnx'))
    assert onnx_contract.read_metadata(model)['scores'] == 'sigmoid'
    assert 'Wrote ONNX model (sigmoid scores, ' in log
    pixels = _images(images)
    scores, graph, saved = _scores(out, pixels)
    np.testing.assert_allclose(scores, graph, atol=1e-5)
    np.testing.assert_allclose(scores, saved, atol=1e-4)
    assert np.ptp(scores.sum(axis=1)) > 0.01  # Independent sigmoids, not a softmax.


def _hide_the_extra(tmp_path) -> dict:
    """Environment for a child process in which `import tf2onnx` fails as when not installed."""
    hook = tmp_path / 'hook'
    hook.mkdir()
    (hook / 'sitecustomize.py').write_text("import sys\nsys.modules['tf2onnx'] = None\n")
    return {'PYTHONPATH': os.pathsep.join([str(hook), REPO_ROOT,
                                           os.environ.get('PYTHONPATH', '')])}


def test_missing_extra_is_a_usage_error_before_any_work(tmp_path, image_dir, tiny_module):
    out = tmp_path / 'out'
    result = run_module('retrain', *retrain_args(
        image_dir, tiny_module, str(out), 5, '--onnx_output_file', str(out / 'model.onnx')),
                        env_extra=_hide_the_extra(tmp_path))
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [
        "retrain: error: --onnx_output_file needs the onnx extra: pip install '.[onnx]'"]
    assert not out.exists()


@pytest.mark.parametrize('where, reason', [
    (os.path.join('images', 'red', 'model.onnx'), 'which the run reads'),
    ('labels.txt', 'are the same path'),
])
def test_onnx_output_on_an_input_or_another_output_is_refused(tmp_path, tiny_module, where,
                                                               reason):
    images = make_image_folder(str(tmp_path / 'images'), per_class=3)
    result = run_module('retrain', *retrain_args(
        images, tiny_module, str(tmp_path), 5, '--output_labels', str(tmp_path / 'labels.txt'),
        '--onnx_output_file', str(tmp_path / where)))
    assert result.returncode == 2, result.stderr[-3000:]
    line, = [line for line in result.stderr.splitlines() if line.startswith('retrain: error: ')]
    assert '--onnx_output_file' in line
    assert reason in line
    assert not os.path.exists(tmp_path / where) and not os.path.exists(tmp_path / 'bn')


# --- What loaders refuse --------------------------------------------------------------------------

def _model(*nodes, initializers=(), functions=()):
    graph = onnx.helper.make_graph(
        list(nodes), 'g', [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])],
        initializer=list(initializers))
    return onnx.helper.make_model(graph, functions=list(functions))


def test_standard_ops_and_local_functions_are_safe():
    body = onnx.helper.make_function('local', 'Twice', ['a'], ['b'],
                                     [onnx.helper.make_node('Add', ['a', 'a'], ['b'])],
                                     [onnx.helper.make_opsetid('', 13)])
    model = _model(onnx.helper.make_node('Twice', ['x'], ['t'], domain='local'),
                   onnx.helper.make_node('Relu', ['t'], ['y']), functions=[body])
    assert onnx_contract.file_access_problem(model) == ''


def test_custom_ops_are_refused_also_inside_subgraphs():
    custom = onnx.helper.make_node('ReadFile', ['x'], ['y'], domain='com.example', name='reader')
    assert onnx_contract.file_access_problem(_model(custom)) == (
        'it runs the operator com.example.ReadFile (node reader), outside the standard ONNX op '
        'sets')
    branch = onnx.helper.make_graph([custom], 'branch', [], [
        onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])])
    condition = onnx.helper.make_node('If', ['x'], ['y'], then_branch=branch, else_branch=branch)
    assert 'com.example.ReadFile' in onnx_contract.file_access_problem(_model(condition))


def test_external_data_is_refused():
    weights = onnx.TensorProto(name='w', data_type=onnx.TensorProto.FLOAT, dims=[1],
                               data_location=onnx.TensorProto.EXTERNAL)
    weights.external_data.add(key='location', value='../../etc/passwd')
    model = _model(onnx.helper.make_node('Add', ['x', 'w'], ['y']), initializers=[weights])
    assert onnx_contract.file_access_problem(model) == (
        'its tensor w is stored in another file (external data)')


# --- Without TensorFlow ---------------------------------------------------------------------------

def _readme_onnxruntime_snippet() -> str:
    with open(os.path.join(REPO_ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    section = text[text.index('\n### ONNX Runtime'):]
    return re.search(r'^```python\n(.*?)^```', section, re.M | re.S).group(1)


def _venv_with_only(venv: str, distributions) -> str:
    """The python of a new venv that sees exactly `distributions` of this interpreter (linked
    into its site-packages: no download), nothing else; skips where that cannot be made."""
    import importlib.metadata
    created = subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv],
                             capture_output=True, text=True, check=False)
    if created.returncode != 0:
        pytest.skip(f'this Python cannot make a venv: {created.stderr.strip()[-300:]}')
    python = os.path.join(venv, 'Scripts' if os.name == 'nt' else 'bin', 'python')
    purelib = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_path('
                              '"purelib"))'], capture_output=True, text=True,
                             check=True).stdout.strip()
    for name in distributions:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f'{name} is not installed here, and cannot be installed offline')
        tops = {str(f).split('/')[0] for f in distribution.files or () if '..' not in str(f)}
        for top in tops:
            source = str(distribution.locate_file(top))
            target = os.path.join(purelib, top)
            if os.path.exists(source) and not os.path.exists(target):
                try:
                    os.symlink(source, target)
                except OSError as e:
                    pytest.skip(f'cannot link {source} into a venv: {e}')
    return python


def test_readme_snippet_runs_with_only_onnxruntime_numpy_and_pillow(retrained, tmp_path):
    """The file is all a client needs: the README's ONNX Runtime lines run in a venv that has
    no TensorFlow (nor tf2onnx, nor this project), and name the class of a red photo."""
    out, _ = retrained
    python = _venv_with_only(str(tmp_path / 'venv'), ['onnxruntime', 'numpy', 'pillow'])
    work = tmp_path / 'client'
    work.mkdir()
    os.symlink(os.path.join(out, 'model.onnx'), work / 'flowers.onnx')
    write_image(str(work / 'photo.jpg'), CLASS_COLOURS['red'], np.random.default_rng(5))
    (work / 'client.py').write_text(
        "import importlib.util\n"
        "assert importlib.util.find_spec('tensorflow') is None, 'TensorFlow is visible'\n"
        "assert importlib.util.find_spec('retrain') is None, 'this project is visible'\n"
        + _readme_onnxruntime_snippet(), encoding='utf-8')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    result = subprocess.run([python, '-I', 'client.py'], cwd=str(work), capture_output=True,
                            text=True, encoding='utf-8', env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0].split()[0] == 'red', result.stdout


# --- The quality bar on real photos (../shared) -------------------------------------------------

def test_mobilenet_v2_flowers_onnxruntime_and_openvino_keep_the_graph_s_answers(
        shared_dir, tmp_path):
    """On the held-out photos: ONNX Runtime and OpenVINO (CPU, f32) give the frozen graph's top-1
    on >= 98% of them and agree within 1e-3; ONNX Runtime gives the SavedModel's scores within
    1e-4; the file holds the module's weights (MobileNet V2: 2.2M of them, about 9 MB). OpenVINO
    comes with the test extra; without it, ONNX Runtime is checked and the test says so. 30
    photos of each class, 70% of them held out: the answers compared, not the accuracy, matter."""
    source = os.path.join(shared_dir, 'data', 'flower_photos_small')
    photos = str(tmp_path / 'photos')
    for name in sorted(n for n in os.listdir(source) if os.path.isdir(os.path.join(source, n))):
        os.makedirs(os.path.join(photos, name))
        for image in sorted(os.listdir(os.path.join(source, name)))[:30]:
            shutil.copy(os.path.join(source, name, image), os.path.join(photos, name))
    module = os.path.join(shared_dir, 'models', 'mobilenet_v2_100_224_feature_vector')
    out = str(tmp_path / 'out')
    _run(photos, module, out, 100, '--noreport', '--testing_percentage', '35',
         '--validation_percentage', '35')
    classes = image_lists.create_image_lists(photos, 35, 35)
    paths = [image_lists.image_path(photos, c, rel) for c in classes
             for category in ('testing', 'validation') for rel in c.images(category)]
    pixels = np.concatenate([batch.numpy() for _, batch, _ in image_io.image_batches(
        paths, (224, 224), 32, ordered=True)])
    scores, graph, saved = _scores(out, pixels)
    assert len(paths) >= 90
    assert np.mean(scores.argmax(1) == graph.argmax(1)) >= 0.98
    assert np.abs(scores - saved).max() <= 1e-4
    assert os.path.getsize(os.path.join(out, 'model.onnx')) > 8_000_000
    openvino = pytest.importorskip('openvino', reason='OpenVINO absent: ONNX Runtime checked')
    compiled = openvino.Core().compile_model(os.path.join(out, 'model.onnx'), 'CPU',
                                             {'INFERENCE_PRECISION_HINT': 'f32'})
    vino = compiled(pixels)[0]
    assert np.mean(vino.argmax(1) == graph.argmax(1)) >= 0.98
    assert np.abs(scores - vino).max() <= 1e-3


# --- compat convert, compat inspect and label_image -------------------------------------------

GENERATIONS = {'inception': (gb.inception_like, 1), 'poets': (gb.poets_like, 1),
               'hub': (gb.hub_like, 'N')}


@pytest.mark.parametrize('generation', sorted(GENERATIONS))
def test_compat_converts_graphs_of_every_generation(tmp_path, generation):
    """One contract whatever the graph took: pixels in [0, 1], the graph's scores, its labels.
    Old graphs made for one image at a time keep that batch size."""
    make, batch = GENERATIONS[generation]
    graph = gb.save(make(), str(tmp_path / 'retrained_graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    target = str(tmp_path / 'old.onnx')
    result = run_module('compat', 'convert', graph, '--labels', labels, '--saved_model_dir',
                        str(tmp_path / 'saved'), '--onnx_output_file', target)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'wrote {target}' in result.stdout.splitlines()
    model = onnx.load(target)
    assert onnx_contract.read_metadata(model) == {
        'labels': '\n'.join(f'class {i}' for i in range(gb.CLASSES)),
        'image_size': f'{gb.SIZE},{gb.SIZE}', 'input_range': '0,1', 'scores': 'softmax'}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [batch, gb.SIZE, gb.SIZE, 3]
    pixels = np.random.default_rng(1).random((1, gb.SIZE, gb.SIZE, 3), np.float32)
    expected = models.load(graph).classify(pixels)
    actual = onnxruntime.InferenceSession(target).run(None, {'image': pixels})[0]
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_models_of_any_size_convert_and_inspect_at_the_size_given(tmp_path):
    """compat said `give --input_height and --input_width`, flags only label_image had."""
    graph = gb.save(gb.hub_like(size=None), str(tmp_path / 'any_size.pb'))
    target = str(tmp_path / 'converted.onnx')
    result = run_module('compat', 'convert', graph, '--labels', gb.write_labels(
        str(tmp_path / 'labels.txt')), '--saved_model_dir', str(tmp_path / 'saved'),
                        '--onnx_output_file', target, '--input_height', '20', '--input_width',
                        '16')
    assert result.returncode == 0, result.stderr[-3000:]
    pixels = np.random.default_rng(1).random((2, 20, 16, 3), np.float32)
    np.testing.assert_allclose(
        onnxruntime.InferenceSession(target).run(None, {'image': pixels})[0],
        models.load(graph, models.Overrides(size=(20, 16))).classify(pixels), atol=1e-5)
    mean = onnx.helper.make_node('ReduceMean', ['x'], ['y'], axes=[1, 2], keepdims=0)
    any_size = onnx.helper.make_model(onnx.helper.make_graph(
        [mean], 'g', [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT,
                                                         ['N', 'H', 'W', 3])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, ['N', 3])]),
        opset_imports=[onnx.helper.make_opsetid('', 13)])
    onnx.save(any_size, str(tmp_path / 'any_size.onnx'))
    inspected = run_module('compat', 'inspect', str(tmp_path / 'any_size.onnx'),
                           '--input_height', '20', '--input_width', '16')
    assert inspected.returncode == 0, inspected.stderr[-3000:]
    assert '  input  x: float [N, 20, 16, 3] as values in [0, 1]' in inspected.stdout


def test_label_image_and_inspect_read_the_onnx_file_and_its_labels(retrained, image_dir):
    """No --labels: the file's own; the scores are the frozen graph's to the printed digit, give
    or take one in the last (ONNX Runtime's float arithmetic may round a fifth decimal the other
    way: 0.99503 against 0.99502 on one run)."""
    out, _ = retrained
    photos = [os.path.join(image_dir, name, f'{name}_000.jpg') for name in sorted(CLASS_COLOURS)]
    from_onnx = run_module('label_image', '--graph', os.path.join(out, 'model.onnx'), '-v',
                           *photos)
    from_graph = run_module('label_image', '--graph', os.path.join(out, 'graph.pb'),
                            '--labels', os.path.join(out, 'labels.txt'), *photos)
    assert from_onnx.returncode == 0, from_onnx.stderr[-3000:]
    onnx_blocks, graph_blocks = (label_image_blocks(from_onnx.stdout),
                                 label_image_blocks(from_graph.stdout))
    assert onnx_blocks.keys() == graph_blocks.keys()
    for path, expected in graph_blocks.items():
        assert [label for label, _ in onnx_blocks[path]] == [label for label, _ in expected]
        np.testing.assert_allclose([score for _, score in onnx_blocks[path]],
                                   [score for _, score in expected], rtol=0, atol=1.01e-5)
    assert [block[0][0] for block in label_image_blocks(from_onnx.stdout).values()] == sorted(
        CLASS_COLOURS)
    assert 'ONNX, made by retrain' in from_onnx.stderr
    inspected = run_module('compat', 'inspect', os.path.join(out, 'model.onnx'))
    assert inspected.returncode == 0, inspected.stderr[-3000:]
    lines = inspected.stdout.splitlines()
    for line in ('  input  image: float [N, 32, 32, 3] as values in [0, 1] (ONNX image input '
                 '(retrain --onnx_output_file, compat convert))', '  output scores (3 classes)',
                 '  unsafe ops: none', '  labels: 3: blue, green, red', '  scores: softmax',
                 '  image_size: 32,32'):
        assert line in lines, inspected.stdout


def test_an_onnx_file_under_another_name_is_known_by_its_content(retrained, tmp_path):
    """Renamed to .pb it was read as a frozen graph: 'not a TensorFlow graph'."""
    out, _ = retrained
    renamed = str(tmp_path / 'model.pb')
    shutil.copy(os.path.join(out, 'model.onnx'), renamed)
    loaded = models.load(renamed)
    assert loaded.format == models.ONNX and loaded.num_classes == len(CLASS_COLOURS)


def test_a_model_name_that_is_not_utf8_is_one_line_and_a_labels_name_is_read(retrained,
                                                                              tmp_path):
    """TensorFlow cannot open such a model name (a traceback, UnicodeEncodeError); labels are
    read by os, as images are."""
    out, _ = retrained
    model, labels = (os.path.join(os.fsencode(str(tmp_path)), name)
                     for name in (b'm\xff.onnx', b'l\xff.txt'))
    try:
        shutil.copy(os.path.join(out, 'model.onnx'), model)
        shutil.copy(os.path.join(out, 'labels.txt'), labels)
    except OSError as e:  # macOS file systems refuse names that are not valid UTF-8.
        pytest.skip(f'this file system refuses names that are not UTF-8: {e}')
    result = run_module('label_image', '--graph', os.fsdecode(model), str(tmp_path))
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f'label_image: error: cannot read {tmp_path}{os.sep}m\\xff.onnx: its name is not UTF-8, '
        'which TensorFlow cannot open; rename it']
    assert read_labels(os.fsdecode(labels)) == sorted(CLASS_COLOURS)


def test_a_model_onnx_runtime_cannot_run_is_one_line_with_its_reason(tmp_path):
    """ONNX Runtime put its source location and a C++ signature first, and the line was cut
    before the reason."""
    path = str(tmp_path / 'future.onnx')
    onnx.save(onnx.helper.make_model(_model(onnx.helper.make_node('Relu', ['x'], ['y'])).graph,
                                     opset_imports=[onnx.helper.make_opsetid('', 99)]), path)
    with pytest.raises(ToolError) as error:
        onnx_model.session(onnx_model.read(path))
    assert str(error.value).startswith(f'cannot run {path}: [ONNXRuntimeError] : 1 : FAIL : '
                                       'ONNX Runtime only *guarantees* support for models')
    assert 'Opset 99' in str(error.value)


def test_an_onnx_model_that_could_touch_files_is_refused(tmp_path):
    model = _model(onnx.helper.make_node('ReadFile', ['x'], ['y'], domain='com.example',
                                         name='reader'))
    path = str(tmp_path / 'evil.onnx')
    onnx.save(model, path)
    photo = str(tmp_path / 'photo.jpg')
    write_image(photo, CLASS_COLOURS['red'], np.random.default_rng(0))
    result = run_module('label_image', '--graph', path, '--labels', path, photo)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'label_image: error: refusing to run {path}: it runs the operator com.example.ReadFile '
        '(node reader), outside the standard ONNX op sets')
    inspected = run_module('compat', 'inspect', path)
    assert inspected.returncode == 0 and 'not loaded' in inspected.stdout


def test_compat_convert_usage_errors(tmp_path):
    graph = gb.save(gb.hub_like(), str(tmp_path / 'retrained_graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    common = ('compat', 'convert', graph, '--labels', labels, '--saved_model_dir',
              str(tmp_path / 'saved'))
    missing = run_module(*common, '--onnx_output_file', str(tmp_path / 'm.onnx'),
                         env_extra=_hide_the_extra(tmp_path))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        "python -m compat: error: --onnx_output_file needs the onnx extra: "
        "pip install '.[onnx]'")
    on_input = run_module(*common, '--onnx_output_file', labels)
    assert on_input.returncode == 2
    assert on_input.stderr.strip().splitlines()[-1] == (
        f'python -m compat: error: --onnx_output_file and --labels are the same path '
        f'({labels}): the run would overwrite one with the other')
    assert not os.path.exists(tmp_path / 'saved') and not os.path.exists(tmp_path / 'm.onnx')


def test_poets_era_graph_from_shared_converts_and_labels_photos_alike(shared_dir, tmp_path):
    """The real classic Poets-era retrained graph: label_image gives the same answers on the
    photos from the .onnx file (labels from its metadata) as from the graph and its labels."""
    legacy = os.path.join(shared_dir, 'models', 'legacy', 'glasses_mobilenet_0.25_224')
    graph = os.path.join(legacy, 'retrained_graph.pb')
    labels = os.path.join(legacy, 'retrained_labels.txt')
    target = str(tmp_path / 'old.onnx')
    result = run_module('compat', 'convert', graph, '--labels', labels, '--saved_model_dir',
                        str(tmp_path / 'saved'), '--onnx_output_file', target)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = os.path.join(shared_dir, 'data', 'flower_photos_small', 'roses')
    photos = sorted(os.path.join(folder, name) for name in os.listdir(folder))[:20]
    from_onnx = run_module('label_image', '--graph', target, '--top_k', '1', *photos)
    from_graph = run_module('label_image', '--graph', graph, '--labels', labels, '--top_k', '1',
                            *photos)
    assert from_onnx.returncode == 0, from_onnx.stderr[-3000:]
    # Labels with spaces (`with glasses`): label_image_blocks reads one-word labels only.
    onnx_top, graph_top = (re.findall(r'^(.+) \(score = (\d\.\d{5})\)$', r.stdout, re.M)
                           for r in (from_onnx, from_graph))
    assert len(onnx_top) == len(graph_top) == 20
    for (onnx_label, onnx_score), (graph_label, graph_score) in zip(onnx_top, graph_top):
        assert onnx_label == graph_label
        assert abs(float(onnx_score) - float(graph_score)) <= 2e-5
