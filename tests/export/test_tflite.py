"""--tflite_output_file: the TensorFlow Lite classifier agrees with the frozen graph."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from compat import classifier
from compat import tflite as compat_tflite
from compat.graphs import graph_function
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common.errors import ToolError
from retrain.common.graph_names import judges
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.export import frozen_graph, tflite, tflite_metadata
from retrain.features import legacy_models
from retrain.features.graph_files import load_graph_def
from retrain.features.hub_module import load_hub_module
from retrain.train.heads import Head
from retrain.train.loop import train

import mediapipe_client
from conftest import (
    CLASS_COLOURS,
    REPO_ROOT,
    assert_judged_alike,
    retrain_args,
    run_module,
    tflite_interpreter,
    write_image,
)


@pytest.fixture(scope='module')
def retrained(tmp_path_factory, image_dir, tiny_module):
    """A real retrain run of the tiny module that also writes a float .tflite file."""
    work = tmp_path_factory.mktemp('tflite')
    result = run_module('retrain', *retrain_args(
        image_dir, tiny_module, str(work), 30, '--summaries_dir', '',
        '--tflite_output_file', str(work / 'model.tflite')))
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def _images(image_dir: str, size=(32, 32)) -> np.ndarray:
    paths = sorted(os.path.join(image_dir, c, f) for c in sorted(os.listdir(image_dir))
                   for f in sorted(os.listdir(os.path.join(image_dir, c))))
    return np.stack([image_io.load_image(p, size) for p in paths])


def _graph_scores(graph_def, images: np.ndarray) -> np.ndarray:
    classify = graph_function(graph_def, ['Placeholder:0'], ['final_result:0'])
    return classify(tf.constant(images))[0].numpy()


def _tflite_scores(model: bytes, images: np.ndarray):
    interpreter = tflite_interpreter(model_content=model)
    (given,), (taken, *_) = interpreter.get_input_details(), interpreter.get_output_details()
    scores = []
    for image in images:
        interpreter.set_tensor(given['index'], image[np.newaxis])
        interpreter.invoke()
        scores.append(interpreter.get_tensor(taken['index'])[0])
    return np.array(scores), given, taken, interpreter


def test_float_model_matches_the_graph(retrained, image_dir):
    images = _images(image_dir)
    with open(retrained / 'model.tflite', 'rb') as f:
        model = f.read()
    scores, given, taken, _ = _tflite_scores(model, images)
    assert given['dtype'] == np.float32 and list(given['shape']) == [1, 32, 32, 3]
    assert taken['dtype'] == np.float32 and list(taken['shape']) == [1, 3]
    expected = _graph_scores(load_graph_def(str(retrained / 'graph.pb')), images)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # A softmax comes out.
    assert not [n for n in os.listdir(retrained) if n.startswith('.')]  # Written atomically.


def test_float_model_judges_unknown_as_the_graph(retrained, image_dir):
    """The second output, [1, 1], is the frozen graph's unknown_score; label_image reads it."""
    images = np.concatenate([_images(image_dir)[::15], np.random.default_rng(0).random(
        (3, 32, 32, 3), np.float32)])
    interpreter = tflite_interpreter(model_path=str(retrained / 'model.tflite'))
    (given,), outputs = interpreter.get_input_details(), interpreter.get_output_details()
    assert [o['name'] for o in outputs] == ['final_result', 'unknown_score_output']
    assert list(outputs[1]['shape']) == [1, 1]
    judged = []
    for image in images:
        interpreter.set_tensor(given['index'], image[np.newaxis])
        interpreter.invoke()
        judged.append(interpreter.get_tensor(outputs[1]['index'])[0, 0])
    classify = graph_function(load_graph_def(str(retrained / 'graph.pb')), ['Placeholder:0'],
                              ['unknown_score:0'])
    expected = classify(tf.constant(images))[0].numpy()
    assert_judged_alike(judged, expected)


@pytest.mark.parametrize('quantize', ['dynamic', 'int8'])
def test_quantized_models_agree_on_top1(retrained, image_dir, quantize, tmp_path):
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    training = sorted(os.path.join(image_dir, 'red', f) for f in os.listdir(
        os.path.join(image_dir, 'red')))
    path = str(tmp_path / 'model.tflite')
    tflite.write_tflite(path, graph_def, (32, 32), quantize=quantize,
                               training_paths=training, seed=0)
    with open(path, 'rb') as f:
        model = f.read()
    images = _images(image_dir)
    scores, given, taken, interpreter = _tflite_scores(model, images)
    assert given['dtype'] == np.float32 and taken['dtype'] == np.float32
    expected = _graph_scores(graph_def, images)
    agreement = np.mean(scores.argmax(axis=1) == expected.argmax(axis=1))
    assert agreement >= 0.95
    if quantize == 'int8':  # Activations really are int8 inside.
        inner = [t['dtype'] for t in interpreter.get_tensor_details()]
        assert np.int8 in inner
    # The graph judges; int8 ranges calibrated on training images would clip the unknown score.
    outputs = [t['name'] for t in interpreter.get_output_details()]
    assert judges(graph_def)
    assert outputs[1:] == ([] if quantize == 'int8' else ['unknown_score_output'])


def test_bad_quantization_is_a_one_line_error(retrained):
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    with pytest.raises(ToolError, match='--tflite_quantize must be one of none, dynamic, int8'):
        tflite.convert(graph_def, (32, 32), quantize='float16')


def test_real_mobilenet_int8_agrees_with_its_graph(shared_dir):
    """The real MobileNet V2 with a layer trained on a few flower photos, int8 quantized."""
    extractor = load_hub_module(os.path.join(shared_dir, 'models',
                                             'mobilenet_v2_100_224_feature_vector'))
    photos = os.path.join(shared_dir, 'data', 'flower_photos_small')
    classes = sorted(os.listdir(photos))
    classes = [c for c in classes if os.path.isdir(os.path.join(photos, c))]
    paths = [[os.path.join(photos, c, f) for f in sorted(os.listdir(os.path.join(photos, c)))[:8]]
             for c in classes]
    images = np.stack([image_io.load_image(p, (224, 224)) for group in paths for p in group])
    truth = np.repeat(np.arange(len(classes)), 8)
    features = extractor(tf.constant(images)).numpy()
    none = np.zeros((0, features.shape[1]), np.float32)
    data = Bottlenecks({'training': features, 'validation': none, 'testing': none},
                       {'training': truth, 'validation': truth[:0], 'testing': truth[:0]},
                       {'training': [''] * len(truth), 'validation': [], 'testing': []})
    head = train(data, len(classes), RetrainConfig(how_many_training_steps=100, random_seed=0,
                                                   summaries_dir=''))
    representative = tflite.representative_images(
        [p for group in paths for p in group[4:]], (224, 224), count=10, seed=0)
    model = tflite.convert(tflite.classifier_graph(extractor, head), (224, 224),
                                  quantize='int8', representative=representative)
    scores, _, _, _ = _tflite_scores(model, images)
    expected = _graph_scores(frozen_graph.build_graph(extractor, head), images)
    assert np.mean(scores.argmax(axis=1) == expected.argmax(axis=1)) >= 0.95
    assert len(model) < 4_000_000  # int8: MobileNet V2's 2.2M parameters, about 1 byte each.


def test_weights_stored_quantized_convert_to_the_graphs_scores():
    """quint8 constants behind TensorFlow's Dequantize (TensorFlow Lite has no such op), as in the
    classic mobilenet_*_quantized graphs: the file computes with their float values. (The
    converter folds small ones itself: these weights are large enough that it does not.)"""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, 4, 4, 3], name='Placeholder')
        weights = tf.raw_ops.Dequantize(
            input=tf.constant(rng.integers(0, 256, (3, 2000)).astype(np.uint8), tf.quint8),
            min_range=tf.constant(-2.0), max_range=tf.constant(2.0), mode='MIN_FIRST')
        tf.nn.softmax(tf.matmul(tf.reduce_mean(image, [1, 2]), weights), name='final_result')
    images = rng.random((3, 4, 4, 3), np.float32)
    scores, _, _, _ = _tflite_scores(tflite.convert(graph.as_graph_def(), (4, 4)), images)
    np.testing.assert_allclose(scores, _graph_scores(graph.as_graph_def(), images), atol=1e-6)


def test_real_quantized_mobilenet_converts(shared_dir):
    """--architecture mobilenet_0.25_224_quantized --tflite_output_file: its graph's weights are
    quint8 constants behind Dequantize ops."""
    extractor = legacy_models.load_architecture('mobilenet_0.25_224_quantized',
                                                os.path.join(shared_dir, 'models'))
    head = Head.initial(extractor.bottleneck_size, 2, np.random.default_rng(0))
    images = np.random.default_rng(0).random((2, 224, 224, 3), np.float32)
    scores, _, _, _ = _tflite_scores(
        tflite.convert(tflite.classifier_graph(extractor, head), (224, 224)), images)
    expected = _graph_scores(frozen_graph.build_graph(extractor, head), images)
    np.testing.assert_allclose(scores, expected, atol=1e-4)


@pytest.mark.parametrize('quantize', tflite.QUANTIZATIONS)
def test_mediapipe_image_classifier_runs_the_file_as_it_is(retrained, image_dir, quantize,
                                                            tmp_path):
    """MediaPipe finds normalization and labels in the file; it agrees with the frozen graph.

    The float file is the one `retrain --tflite_output_file` wrote; the quantized ones come from
    the function it calls, given the same labels.
    """
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    with open(retrained / 'labels.txt', encoding='utf-8') as f:
        labels = f.read().splitlines()
    path = str(retrained / 'model.tflite')
    if quantize != 'none':
        path = str(tmp_path / f'{quantize}.tflite')
        training = [os.path.join(image_dir, c, f) for c in labels
                    for f in sorted(os.listdir(os.path.join(image_dir, c)))]
        tflite.write_tflite(path, graph_def, (32, 32), quantize=quantize,
                                   training_paths=training, seed=0, labels=labels)
    images = mediapipe_client.noisy_images([CLASS_COLOURS[c] for c in labels], 10, 32)
    scores, names = mediapipe_client.classify(path, images)
    assert names == labels
    expected = _graph_scores(graph_def, images.astype(np.float32) / 255.0)
    agreement = np.mean(scores.argmax(axis=1) == expected.argmax(axis=1))
    assert agreement >= (0.97 if quantize == 'none' else 0.9)
    if quantize == 'none':
        np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_metadata_reads_back_and_is_replaced_not_repeated(retrained):
    """What retrain wrote: the name, a description of the run, pixels / 255, the labels."""
    with open(retrained / 'model.tflite', 'rb') as f:
        model = f.read()
    found = tflite_metadata.read_metadata(model)
    assert (found.name, found.mean, found.std, found.color_space) == (
        'image classifier', (0.0,), (255.0,), 'RGB')
    assert found.description.startswith('A classifier of 3 classes retrained on module ')
    assert found.labels == ('blue', 'green', 'red')
    again = tflite_metadata.add_metadata(model, 'renamed', 'again', ['a', 'b', 'c'])
    assert tflite_metadata.read_metadata(again).name == 'renamed'
    parsed = schema.Model.GetRootAs(again, 0)
    names = [parsed.Metadata(i).Name() for i in range(parsed.MetadataLength())]
    assert names.count(b'TFLITE_METADATA') == 1
    assert parsed.BuffersLength() == schema.Model.GetRootAs(model, 0).BuffersLength()
    for written in (model, again):  # Tensor data 16-byte aligned, as the schema wants.
        parsed = schema.Model.GetRootAs(written, 0)
        buffers = [parsed.Buffers(i) for i in range(parsed.BuffersLength())]
        starts = [b._tab.Vector(b._tab.Offset(4)) for b in buffers if b.DataLength()]
        assert len(starts) > 3 and all(start % 16 == 0 for start in starts)
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    assert tflite_metadata.read_metadata(tflite.convert(graph_def, (32, 32))) is None


# --- Opening .tflite files: checked first, run by LiteRT ------------------------------------------

@pytest.fixture(scope='module')
def small_tflite(tmp_path_factory):
    """(model.tflite, labels.txt, photo.jpg): a small float classifier of 3 classes."""
    work = tmp_path_factory.mktemp('small_tflite')

    @tf.function(input_signature=[tf.TensorSpec([1, 24, 24, 3], tf.float32)])
    def classify(images):
        return tf.nn.softmax(tf.reduce_mean(images, [1, 2]) * [[4.0, 2.0, 1.0]])

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [classify.get_concrete_function()], classify)
    model = str(work / 'model.tflite')
    with open(model, 'wb') as f:
        f.write(converter.convert())
    labels = str(work / 'labels.txt')
    with open(labels, 'w', encoding='utf-8') as f:
        f.write('red\ngreen\nblue\n')
    photo = str(work / 'photo.jpg')
    write_image(photo, (200, 40, 40), np.random.default_rng(0))
    return model, labels, photo


def _damaged(model: str, folder, name: str, length: int = None, seed: int = None) -> str:
    """The model truncated to `length` bytes, or random bytes after its first 8 (root offset and
    the TFL3 identifier)."""
    with open(model, 'rb') as f:
        content = f.read()
    if seed is not None:
        noise = np.random.default_rng(seed).integers(0, 256, len(content), dtype=np.uint8)
        content = content[:8] + noise.tobytes()[8:]
    path = str(folder / name)
    with open(path, 'wb') as f:
        f.write(content[:length])
    return path


def test_label_image_takes_the_labels_the_file_carries(retrained, small_tflite):
    """Its metadata's labels.txt, as an .onnx file's (none in a file without metadata): without
    them label_image wanted /tmp/output_labels.txt, whatever run had written it."""
    with open(retrained / 'labels.txt', encoding='utf-8') as f:
        labels = f.read().splitlines()
    assert classifier.load(str(retrained / 'model.tflite')).labels == labels
    assert classifier.load(small_tflite[0]).labels is None


def test_damaged_files_are_refused_before_any_interpreter(small_tflite, tmp_path):
    model, _, _ = small_tflite
    size = os.path.getsize(model)
    assert compat_tflite.read(model).op_names == ['MEAN', 'MUL', 'SOFTMAX']
    for length in (0, 7, 8, 12, 64, size // 3, size // 2, size - 8, size - 1):
        path = _damaged(model, tmp_path, f'cut{length}.tflite', length=length)
        with pytest.raises(ToolError, match=r'^not a TensorFlow Lite model: .*cut\d+\.tflite '
                           r'\((no TFL3 identifier|damaged or truncated)\)$'):
            compat_tflite.read(path)
    for seed in range(20):
        path = _damaged(model, tmp_path, f'garbage{seed}.tflite', seed=seed)
        with pytest.raises(ToolError, match=r'^not a TensorFlow Lite model: .*garbage'):
            compat_tflite.read(path)


def test_damaged_files_are_one_line_errors_in_every_cli(small_tflite, tmp_path):
    """TensorFlow's interpreter died with a segmentation fault (exit 139) on these."""
    model, labels, photo = small_tflite
    size = os.path.getsize(model)
    half = _damaged(model, tmp_path, 'half.tflite', length=size // 2)
    short = _damaged(model, tmp_path, 'short.tflite', length=size - 1)
    garbage = _damaged(model, tmp_path, 'garbage.tflite', seed=1)
    # Each program on another kind of damage (every kind is refused in-process above).
    runs = {'label_image': (half, run_module('label_image', '--graph', half, '--labels', labels,
                                             photo)),
            'python -m compat inspect': (short, run_module('compat', 'inspect', short)),
            'python -m compat convert': (garbage, run_module(
                'compat', 'convert', garbage, '--labels', labels,
                '--saved_model_dir', str(tmp_path / 'converted')))}
    for program, (path, result) in runs.items():
        assert result.returncode == 1, (program, path, result.returncode, result.stderr)
        assert result.stdout == '' and 'Traceback' not in result.stderr
        errors = [line for line in result.stderr.splitlines() if ': error: ' in line]
        assert len(errors) == 1 and errors[0].startswith(
            f'{program}: error: not a TensorFlow Lite model: {path} ('), errors


def test_label_image_runs_tflite_on_litert_without_deprecation_text(small_tflite, tmp_path):
    pytest.importorskip('ai_edge_litert')
    model, labels, photo = small_tflite
    assert type(compat_tflite.interpreter(compat_tflite.read(model))).__module__.startswith(
        'ai_edge_litert')
    hidden = tmp_path / 'hidden' / 'ai_edge_litert'  # As where LiteRT is not installed.
    hidden.mkdir(parents=True)
    (hidden / '__init__.py').write_text('raise ImportError("hidden by the test")\n')
    answers = []
    for env in (None, {'PYTHONPATH': str(hidden.parent) + os.pathsep + REPO_ROOT}):
        result = run_module('label_image', '--graph', model, '--labels', labels, '--json', photo,
                            env_extra=env)
        assert result.returncode == 0, result.stderr
        assert 'deprecat' not in (result.stdout + result.stderr).lower()
        assert 'XNNPACK' not in result.stderr  # The runtime's own INFO line on stderr.
        answers.append(json.loads(result.stdout)[0]['predictions'])
    assert answers[0][0]['label'] == 'red'  # Red pixels weigh 4x: red wins on a red photo.
    assert answers[0] == answers[1]  # The fallback interpreter gives the same answer.
