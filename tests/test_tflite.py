"""--tflite_output_file: the TensorFlow Lite classifier agrees with the frozen graph."""
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

import mediapipe_client
from compat.graph_io import graph_function, load_graph_def
from conftest import CLASS_COLOURS, retrain_args, run_module
from retrain import export, image_io, tflite_export, tflite_metadata
from retrain.errors import RetrainError
from retrain.extractors import load_hub_module
from retrain.bottleneck_cache import Bottlenecks
from retrain.config import RetrainConfig
from retrain.training import train


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
    interpreter = tf.lite.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
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


@pytest.mark.parametrize('quantize', ['dynamic', 'int8'])
def test_quantized_models_agree_on_top1(retrained, image_dir, quantize, tmp_path):
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    training = sorted(os.path.join(image_dir, 'red', f) for f in os.listdir(
        os.path.join(image_dir, 'red')))
    path = str(tmp_path / 'model.tflite')
    tflite_export.write_tflite(path, graph_def, (32, 32), quantize=quantize,
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


def test_bad_quantization_is_a_one_line_error(retrained):
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    with pytest.raises(RetrainError, match='--tflite_quantize must be one of none, dynamic, int8'):
        tflite_export.convert(graph_def, (32, 32), quantize='float16')


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
    representative = tflite_export.representative_images(
        [p for group in paths for p in group[4:]], (224, 224), count=10, seed=0)
    model = tflite_export.convert(tflite_export.classifier_graph(extractor, head), (224, 224),
                                  quantize='int8', representative=representative)
    scores, _, _, _ = _tflite_scores(model, images)
    expected = _graph_scores(export.build_graph(extractor, head), images)
    assert np.mean(scores.argmax(axis=1) == expected.argmax(axis=1)) >= 0.95
    assert len(model) < 4_000_000  # int8: MobileNet V2's 2.2M parameters, about 1 byte each.


@pytest.mark.parametrize('quantize', tflite_export.QUANTIZATIONS)
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
        tflite_export.write_tflite(path, graph_def, (32, 32), quantize=quantize,
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
    for model in (model, again):  # Tensor data 16-byte aligned, as the schema wants.
        parsed = schema.Model.GetRootAs(model, 0)
        buffers = [parsed.Buffers(i) for i in range(parsed.BuffersLength())]
        starts = [b._tab.Vector(b._tab.Offset(4)) for b in buffers if b.DataLength()]
        assert len(starts) > 3 and all(start % 16 == 0 for start in starts)
    graph_def = load_graph_def(str(retrained / 'graph.pb'))
    assert tflite_metadata.read_metadata(tflite_export.convert(graph_def, (32, 32))) is None
