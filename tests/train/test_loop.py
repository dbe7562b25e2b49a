"""The new layer's training: classic semantics, NumPy arithmetic checked against TensorFlow's."""
import logging as python_logging
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.train.heads import Head
from retrain.train.loop import train
from retrain.train.sampler import Sampler
from retrain.train.tensorboard_steps import StepWriter, histogram_buckets, plugin_metadata


def _batch(rng, size=32, dim=7, classes=4):
    return (rng.normal(size=(size, dim)).astype(np.float32) * 3,
            rng.integers(classes, size=size))


def _tensorflow_step(head: Head, x, y, learning_rate):
    """The classic graph's step: sparse softmax cross-entropy, mean, plain gradient descent."""
    weights, biases = tf.Variable(head.weights), tf.Variable(head.biases)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=tf.matmul(x, weights) + biases))
    grad_w, grad_b = tape.gradient(loss, [weights, biases])
    return (weights - learning_rate * grad_w).numpy(), (biases - learning_rate * grad_b).numpy()


def test_step_is_tensorflows_gradient_descent_step():
    rng = np.random.default_rng(0)
    head = Head(rng.normal(size=(7, 4)).astype(np.float32),
                rng.normal(size=4).astype(np.float32))
    for _ in range(3):
        x, y = _batch(rng)
        expected_w, expected_b = _tensorflow_step(head, x, y, 0.5)
        head.step(x, y, 0.5)
        np.testing.assert_allclose(head.weights, expected_w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(head.biases, expected_b, rtol=1e-5, atol=1e-6)
    assert head.weights.dtype == head.biases.dtype == np.float32


def test_metrics_are_tensorflows_cross_entropy_and_accuracy():
    rng = np.random.default_rng(1)
    head = Head(rng.normal(size=(7, 4)).astype(np.float32) * 10, np.zeros(4, np.float32))
    x, y = _batch(rng, size=50)
    logits = x @ head.weights + head.biases
    expected_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=logits)).numpy()
    loss, accuracy = head.metrics(x, y)
    assert loss == pytest.approx(float(expected_loss), rel=1e-5)
    assert accuracy == np.mean(logits.argmax(1) == y)
    np.testing.assert_allclose(head.predict(x), tf.nn.softmax(logits).numpy(), rtol=1e-5,
                               atol=1e-7)
    tf_loss, tf_accuracy = Head.tf_metrics(tf.constant(logits), tf.constant(y))  # Fine-tuning's.
    assert float(tf_loss) == pytest.approx(loss, rel=1e-5)
    assert float(tf_accuracy) == pytest.approx(accuracy)


def test_initial_layer_is_a_truncated_normal_of_stddev_0_001():
    head = Head.initial(1001, 50, np.random.default_rng(2))
    assert head.weights.shape == (1001, 50) and head.weights.dtype == np.float32
    assert np.abs(head.weights).max() <= 0.002
    # A normal cut at two standard deviations keeps 88% of its spread.
    assert head.weights.std() == pytest.approx(0.00088, rel=0.02)
    assert not head.biases.any()


def test_sampler_draws_a_class_then_an_image():
    labels = np.array([0] * 90 + [2] * 10)  # Class 1 has no image in this split.
    draws = Sampler(labels, 3, np.random.default_rng(3)).sample(20000)
    drawn = labels[draws]
    assert set(drawn) == {0, 2}
    assert np.mean(drawn == 2) == pytest.approx(0.5, abs=0.02)
    assert len(set(draws[drawn == 2])) == 10  # Every image of the small class turns up.


def test_a_batch_size_of_minus_1_is_the_whole_split_as_the_classic_scripts_took_it():
    labels = np.array([0] * 90 + [2] * 10)
    np.testing.assert_array_equal(Sampler(labels, 3, np.random.default_rng(3)).sample(-1),
                                  np.arange(100))
    data = _separable(np.random.default_rng(0))
    head = train(data, 3, RetrainConfig(how_many_training_steps=30, train_batch_size=-1,
                                        random_seed=1, summaries_dir=''), log=False)
    assert (head.predict(data.features['testing']).argmax(1) == data.labels['testing']).mean() > 0.9


def _separable(rng, per_split=60, dim=16, classes=3):
    centers = rng.normal(size=(classes, dim)) * 3
    features, labels = {}, {}
    for split in ('training', 'validation', 'testing'):
        labels[split] = np.arange(per_split) % classes
        features[split] = (centers[labels[split]] + rng.normal(size=(per_split, dim))).astype(
            np.float32)
    return Bottlenecks(features, labels, {s: [f'{s}{i}.jpg' for i in range(per_split)]
                                          for s in features})


def test_learns_and_logs_the_classic_lines(caplog):
    data = _separable(np.random.default_rng(4))
    checkpoints = []
    with caplog.at_level(python_logging.INFO, logger='absl'):
        head = train(data, 3, RetrainConfig(how_many_training_steps=25, learning_rate=0.1,
                                            train_batch_size=20, validation_batch_size=-1,
                                            eval_step_interval=10, random_seed=0,
                                            summaries_dir=''),
                     on_checkpoint=lambda step, h: checkpoints.append((step, h)),
                     checkpoint_every=10)
    messages = [r.getMessage() for r in caplog.records]
    for kind in ('Train accuracy', 'Cross entropy', 'Validation accuracy'):
        steps = [int(m.split('Step ')[1].split(':')[0]) for m in messages if kind in m]
        assert steps == [0, 10, 20, 24], kind
    assert all(m.endswith('(N=60)') for m in messages if 'Validation accuracy' in m)
    assert np.mean(head.predict(data.features['testing']).argmax(1)
                   == data.labels['testing']) > 0.95
    assert [step for step, _ in checkpoints] == [10, 20]
    # Each checkpoint keeps the layer as it was then, not the one training went on changing.
    assert not np.array_equal(checkpoints[0][1].weights, head.weights)


@pytest.mark.parametrize('log', [True, False])
def test_a_rate_that_overflows_the_layer_is_an_error_not_nan_outputs(tmp_path, log):
    """The error alone: NumPy's overflow warnings (a file name, a line of source each) were
    printed before it."""
    data = _separable(np.random.default_rng(4))
    config = RetrainConfig(how_many_training_steps=30, learning_rate=1e38, random_seed=0,
                           summaries_dir=str(tmp_path / 'summaries'))
    with pytest.raises(ToolError, match=r'training diverged: the new layer is not finite after '
                                        r'\d+ steps; lower --learning_rate'), \
            warnings.catch_warnings():
        warnings.simplefilter('error')
        train(data, 3, config, log=log)


def test_distorted_batches_replace_the_cached_ones():
    data = _separable(np.random.default_rng(5))
    asked = []

    def batches(indices):
        asked.append(indices)
        return (tf.constant(data.features['training'][indices] * 0),
                tf.constant(data.labels['training'][indices]))

    config = RetrainConfig(how_many_training_steps=4, train_batch_size=8, random_seed=1,
                           summaries_dir='')
    head = train(data, 3, config, training_batches=batches)
    assert [len(i) for i in asked] == [8] * 4
    initial = train(data, 3, RetrainConfig(how_many_training_steps=0, random_seed=1,
                                           summaries_dir=''))
    # All-zero bottlenecks move the biases only.
    np.testing.assert_array_equal(head.weights, initial.weights)
    assert head.biases.any() and not initial.biases.any()


def test_step_summaries_read_back_as_tensorboard_records(tmp_path):
    path = str(tmp_path / 'train')
    writer = StepWriter(path)
    weights = np.random.default_rng(6).normal(size=(10, 3))
    for step in range(250):
        writer.write(step, {'accuracy': step / 250}, {'final_layer/weights': weights})
    writer.close()
    records = []
    for name in os.listdir(path):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(path, name)):
            records += [(event.step, v) for v in event.summary.value]
    accuracy = [(s, tf.make_ndarray(v.tensor)) for s, v in records if v.tag == 'accuracy']
    assert [s for s, _ in accuracy] == list(range(250))
    assert accuracy[100][1] == pytest.approx(0.4)
    histograms = [v for _, v in records if v.tag == 'final_layer/weights']
    assert histograms[0].metadata.plugin_data.plugin_name == 'histograms'
    np.testing.assert_array_equal(tf.make_ndarray(histograms[0].tensor),
                                  histogram_buckets(weights))
    assert tf.make_ndarray(histograms[0].tensor)[:, 2].sum() == 30


def test_plugin_metadata_is_tensorboards():
    from tensorboard.plugins.histogram import metadata as histogram
    from tensorboard.plugins.scalar import metadata as scalar
    for name, module in (('scalars', scalar), ('histograms', histogram)):
        assert (plugin_metadata(name).SerializeToString()
                == module.create_summary_metadata('', '').SerializeToString())
