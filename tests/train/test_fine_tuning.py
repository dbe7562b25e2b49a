"""--fine_tune_steps: the module's own variables train, and every output carries them."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from compat.graphs import graph_function
from retrain.cache import bottleneck_files
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common import interrupts
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.features.extractors import FeatureExtractor
from retrain.features.graph_files import load_graph_def
from retrain.features.hub_module import load_hub_module
from retrain.train.distortions import ImageBatches
from retrain.train.fine_tuning import fine_tune, tunable_variables
from retrain.train.heads import Head, SigmoidHead

from conftest import (
    TinyFeatureVector,
    retrain_args,
    run_module,
    save_tiny_module,
    tflite_interpreter,
)


@pytest.fixture(scope='module')
def tuned(tmp_path_factory, image_dir, tiny_module):
    work = tmp_path_factory.mktemp('fine_tune')
    result = run_module('retrain', *retrain_args(
        image_dir, tiny_module, str(work), 20, '--summaries_dir', '',
        '--saved_model_dir', str(work / 'saved_model'),
        '--tflite_output_file', str(work / 'model.tflite'),
        '--fine_tune_steps', '10', '--fine_tune_learning_rate', '0.5', '--random_seed', '1'))
    assert result.returncode == 0, result.stderr[-3000:]
    return work, result.stderr


def _images(image_dir: str) -> np.ndarray:
    paths = sorted(glob.glob(os.path.join(image_dir, '*', '*')))[::5]
    return np.stack([image_io.load_image(p, (32, 32)) for p in paths])


def test_logs_the_fine_tuning(tuned):
    _, log = tuned
    assert 'Fine-tuning 2 variables of module' in log
    assert 'Fine-tune step 9: Train accuracy = ' in log
    assert 'Fine-tuned validation accuracy = ' in log
    assert 'Final test accuracy = ' in log


def test_exported_graph_holds_the_tuned_module(tuned, image_dir, tiny_module):
    work, _ = tuned
    images = tf.constant(_images(image_dir))
    bottleneck = graph_function(load_graph_def(str(work / 'graph.pb')), ['Placeholder:0'],
                                ['input_1/BottleneckInputPlaceholder:0'])(images)[0].numpy()
    original = load_hub_module(tiny_module)(images).numpy()
    assert not np.allclose(bottleneck, original, atol=1e-3)
    # Only the learned part moved: the mean colour at the end of the vector has no variables.
    np.testing.assert_allclose(bottleneck[:, -3:], original[:, -3:], atol=1e-5)


def test_saved_model_and_tflite_agree_with_the_tuned_graph(tuned, image_dir):
    work, _ = tuned
    images = _images(image_dir)
    expected = graph_function(load_graph_def(str(work / 'graph.pb')), ['Placeholder:0'],
                              ['final_result:0'])(tf.constant(images))[0].numpy()
    serving = tf.saved_model.load(str(work / 'saved_model')).signatures['serving_default']
    np.testing.assert_allclose(serving(image=tf.constant(images))['prediction'].numpy(),
                               expected, atol=1e-6)
    interpreter = tflite_interpreter(model_path=str(work / 'model.tflite'))
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for image, scores in zip(images, expected):
        interpreter.set_tensor(given['index'], image[np.newaxis])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(taken['index'])[0], scores, atol=1e-5)


def test_cache_keeps_the_untuned_bottlenecks(tuned, image_dir, tiny_module):
    work, _ = tuned
    path = sorted(glob.glob(os.path.join(image_dir, 'red', '*.jpg')))[0]
    cached = glob.glob(os.path.join(str(work / 'bn'), 'red', os.path.basename(path) + '_*.txt'))
    values = bottleneck_files.read_bottleneck(cached[0], 19)
    original = load_hub_module(tiny_module)(image_io.load_image(path, (32, 32))[None])[0].numpy()
    np.testing.assert_allclose(values, original, atol=1e-6)


def _extractor(function, size: int, variables=(), owner=None) -> FeatureExtractor:
    return FeatureExtractor(function=function, image_size=(32, 32), bottleneck_size=size,
                            cache_suffix='_t', description='tiny', trainable_variables=variables,
                            owner=owner)


def test_a_module_without_variables_is_left_alone(caplog):
    frozen = _extractor(lambda images: tf.reduce_mean(images, axis=[1, 2]), 3)
    head = Head(np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    assert not tunable_variables(frozen)
    assert fine_tune(None, head, frozen, None, RetrainConfig(fine_tune_steps=5)) is head
    assert 'has no trainable variables' in caplog.text


def _bright_and_dark(head_type):
    """(module, fine_tune's arguments but the config, images, labels): bright and dark images,
    as classes, or as label sets {bright or dark, 'image'}; the layer starts at zero."""
    module = TinyFeatureVector()
    extractor = _extractor(module.__call__, 19, (module.kernel, module.dense), module)
    rng = np.random.default_rng(0)
    bright = np.arange(40) % 2
    images = np.clip(rng.normal(np.where(bright[:, None, None, None], 160, 90), 30,
                                (40, 32, 32, 3)), 0, 255).astype(np.uint8)
    labels = (bright if head_type is Head else
              np.stack([bright, 1 - bright, np.ones(40)], axis=1).astype(np.float32))
    num_labels = 2 if head_type is Head else 3
    batches = ImageBatches(images, labels, extractor, RetrainConfig(), seed=0)
    head = head_type(np.zeros((19, num_labels), np.float32), np.zeros(num_labels, np.float32))
    none = np.zeros((0, 19), np.float32)
    data = Bottlenecks({'training': none, 'validation': none, 'testing': none},
                       {'training': labels, 'validation': labels[:0], 'testing': labels[:0]},
                       {'training': [''] * 40, 'validation': [], 'testing': []})
    return module, (batches, head, extractor, data), images, labels


@pytest.mark.parametrize('head_type, learning_rate', [(Head, 0.5), (SigmoidHead, 2.0)])
def test_fine_tuning_moves_the_module_variables_and_learns(head_type, learning_rate):
    """(The sigmoid loss averages over labels too: its gradients are smaller.)"""
    module, arguments, images, labels = _bright_and_dark(head_type)
    kernel = module.kernel.numpy()
    tuned = fine_tune(*arguments, RetrainConfig(fine_tune_steps=30, train_batch_size=20,
                                                fine_tune_learning_rate=learning_rate,
                                                random_seed=0))
    assert type(tuned) is head_type
    assert not np.allclose(module.kernel.numpy(), kernel)  # The module's variable moved.
    features = arguments[2](tf.constant(images / 255.0, tf.float32)).numpy()
    assert tuned.metrics(features, labels)[1] >= 0.9


class _BatchNormed(tf.Module):
    """A module saved as TF Hub's are, with a `training` argument: in training mode it centres
    its features on the batch and moves its moving mean, else it centres them on that mean."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(np.eye(3, 4, dtype=np.float32))
        self.moving_mean = tf.Variable(tf.zeros(4), trainable=False)

    @tf.function
    def __call__(self, images, training=False):
        features = tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel)
        if training:
            mean = tf.reduce_mean(features, 0)
            self.moving_mean.assign(0.9 * self.moving_mean + 0.1 * mean)
        else:
            mean = self.moving_mean
        return features - mean


@pytest.mark.parametrize('module_training', [False, True])
def test_make_image_classifiers_fine_tuning_runs_the_module_in_training_mode(tmp_path,
                                                                             module_training):
    """As its Keras fit ran a trainable TF Hub module; retrain's stays in inference mode."""
    module = _BatchNormed()
    for training in (False, True):
        module.__call__.get_concrete_function(tf.TensorSpec([None, 32, 32, 3]), training)
    tf.saved_model.save(module, str(tmp_path / 'module'))
    extractor = load_hub_module(str(tmp_path / 'module'))
    assert extractor.training_function is not None
    assert load_hub_module(save_tiny_module(str(tmp_path / 'tiny'))).training_function is None
    _, (_, _, _, data), images, labels = _bright_and_dark(Head)
    batches = ImageBatches(images, labels, extractor, RetrainConfig(), seed=0)
    head = Head(np.zeros((4, 2), np.float32), np.zeros(2, np.float32))
    fine_tune(batches, head, extractor, data, RetrainConfig(fine_tune_steps=3, random_seed=0),
              module_training=module_training)
    moved = np.abs(extractor.owner.moving_mean.numpy()).max() > 0
    assert moved == module_training


def test_a_swallowed_ctrl_c_stops_fine_tuning_before_its_next_step():
    """TensorFlow's finalizers can swallow the KeyboardInterrupt; the remembered request stops
    the loop (a step can take seconds with a real module)."""
    module, arguments, _, _ = _bright_and_dark(Head)
    kernel = module.kernel.numpy()
    interrupts._requested.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            fine_tune(*arguments, RetrainConfig(fine_tune_steps=30, train_batch_size=20))
    finally:
        interrupts._requested.clear()
    np.testing.assert_array_equal(module.kernel.numpy(), kernel)
