"""Training the new softmax layer on bottlenecks held in memory.

The semantics are the classic ones (docs/COMPATIBILITY.md section 6): weights from a truncated normal
with stddev 0.001, zero biases, sparse softmax cross-entropy, plain gradient descent; each step
draws a class uniformly and then an image of it uniformly, with replacement; every
`eval_step_interval` steps the train accuracy and cross entropy of the step's batch (after its
update) and those of a validation batch are logged. What changed is the speed: bottlenecks are one
array in memory, no file is touched per step, and the layer trains in NumPy. A step is a gather
and two [B, D] x [D, classes] products, a few hundred microseconds of arithmetic; any call into
TensorFlow per step (or per iteration of a compiled loop) would add more than that
(bench/bench_multilabel.py measures it: 4000 steps of 1001 x 5 take 1.8 s on 2 AMD EPYC cores).
"""
import dataclasses
import datetime
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.common import interrupts
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.common.errors import RetrainError
from retrain.train.tensorboard_steps import StepWriter

# The classic sampler drew an image index below this and took it modulo the class size.
_INDEX_RANGE = 2 ** 27
_INITIAL_STDDEV = 0.001


class ClassSampler:
    """Draws batches as the classic script did: a class uniformly, then one of its images."""

    def __init__(self, labels: np.ndarray, num_classes: int, rng: np.random.Generator):
        self.order = np.argsort(labels, kind='stable')
        counts = np.bincount(labels, minlength=num_classes)
        self.classes = np.flatnonzero(counts)  # Classes with no image in this split are skipped.
        self.counts = counts[self.classes]
        self.offsets = np.concatenate([[0], np.cumsum(counts)])[self.classes]
        self.rng = rng

    def sample(self, batch_size: int) -> np.ndarray:
        which = self.rng.integers(len(self.classes), size=batch_size)
        within = self.rng.integers(_INDEX_RANGE, size=batch_size) % self.counts[which]
        return self.order[self.offsets[which] + within]


@dataclasses.dataclass
class Head:
    """The trained layer: logits = x @ weights + biases, then softmax."""
    weights: np.ndarray
    biases: np.ndarray
    activation = 'softmax'  # Of the exported graph's final_result (retrain.export.frozen_graph).
    sampler = ClassSampler  # How training draws its batches.

    @classmethod
    def initial(cls, size: int, num_classes: int, rng: np.random.Generator) -> 'Head':
        """Truncated normal weights (redrawn beyond two standard deviations), zero biases."""
        values = rng.standard_normal((size, num_classes))
        while (outside := np.abs(values) > 2).any():
            values[outside] = rng.standard_normal(int(outside.sum()))
        return cls((values * _INITIAL_STDDEV).astype(np.float32),
                   np.zeros(num_classes, np.float32))

    def copy(self) -> 'Head':
        return type(self)(self.weights.copy(), self.biases.copy())

    def _shifted_logits(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.weights + self.biases
        return logits - logits.max(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> np.ndarray:
        exp = np.exp(self._shifted_logits(features))
        return exp / exp.sum(axis=1, keepdims=True)

    def metrics(self, features: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
        """(mean softmax cross-entropy, accuracy) on a batch."""
        shifted = self._shifted_logits(features)
        rows = np.arange(len(labels))
        log_sums = np.log(np.exp(shifted).sum(axis=1))
        loss = float(np.mean(log_sums - shifted[rows, labels]))
        return loss, float(np.mean(shifted.argmax(axis=1) == labels))

    @staticmethod
    def tf_metrics(logits: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(mean cross-entropy, accuracy) in TensorFlow, for training through the module."""
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        return loss, tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32))

    def step(self, features: np.ndarray, labels: np.ndarray, learning_rate: float) -> None:
        """One plain gradient-descent step on the mean cross-entropy of the batch, in place.

        The gradient of the mean softmax cross-entropy by the logits is (softmax - one_hot) / B.
        """
        gradient = self.predict(features)
        gradient[np.arange(len(labels)), labels] -= 1.0
        gradient /= len(labels)
        self.weights -= learning_rate * (features.T @ gradient)
        self.biases -= learning_rate * gradient.sum(axis=0)


def _timestamp() -> str:
    return str(datetime.datetime.now())


def _writers(summaries_dir: str):
    if not summaries_dir:
        return None, None
    return (StepWriter(f'{summaries_dir.rstrip("/")}/train'),
            StepWriter(f'{summaries_dir.rstrip("/")}/validation'))


def _eval_batch(data: Bottlenecks, category: str, batch_size: int,
                sampler: Optional[ClassSampler]) -> Tuple[np.ndarray, np.ndarray]:
    """The whole split for batch_size -1, else a batch drawn like the training batches."""
    x, y = data.features[category], data.labels[category]
    if batch_size < 0 or sampler is None:
        return x, y
    chosen = sampler.sample(batch_size)
    return x[chosen], y[chosen]


def train(data: Bottlenecks, num_classes: int, config: RetrainConfig,
          on_checkpoint: Optional[Callable[[int, Head], None]] = None,
          checkpoint_every: int = 0,
          training_batches: Optional[Callable[[np.ndarray], Tuple[tf.Tensor, tf.Tensor]]] = None,
          head_type: type = Head) -> Head:
    """Trains the layer, logging the classic lines; returns its weights.

    `on_checkpoint(step, head)` is called every `checkpoint_every` steps (intermediate graphs).
    `training_batches(indices)`, if given, supplies each step's (bottlenecks, labels) for the
    training examples the sampler drew, instead of the cached ones (distorted images).
    `head_type` lets multi-label training use this same loop with its own layer, which brings
    its own sampler (retrain.train.multilabel_training).
    """
    sampler_type = head_type.sampler
    if not len(data.labels['training']):
        raise RetrainError('no training images: every image fell into validation or testing')
    config.check()
    rng = np.random.default_rng(config.random_seed)
    train_x, train_y = data.features['training'], data.labels['training']
    head = head_type.initial(train_x.shape[1], num_classes, rng)
    train_sampler = sampler_type(train_y, num_classes, rng)
    validation_sampler = (sampler_type(data.labels['validation'], num_classes, rng)
                          if len(data.labels['validation']) else None)
    train_writer, validation_writer = _writers(config.summaries_dir)
    steps = config.how_many_training_steps
    for i in range(steps):
        interrupts.check()  # A flag: cheap, and distorted steps can take a second each.
        chosen = train_sampler.sample(config.train_batch_size)
        if training_batches is None:
            x, y = train_x[chosen], train_y[chosen]
        else:
            x, y = (t.numpy() for t in training_batches(chosen))
        head.step(x, y, config.learning_rate)
        if i % config.eval_step_interval == 0 or i + 1 == steps:
            _evaluate(i, head, (x, y), data, config, validation_sampler,
                      train_writer, validation_writer)
        if checkpoint_every and on_checkpoint and i > 0 and i % checkpoint_every == 0:
            on_checkpoint(i, head.copy())
    for writer in (train_writer, validation_writer):
        if writer:
            writer.close()
    return head


def _evaluate(step: int, head: Head, batch: Tuple[np.ndarray, np.ndarray], data: Bottlenecks,
              config: RetrainConfig, validation_sampler: Optional[ClassSampler],
              train_writer: Optional[StepWriter], validation_writer: Optional[StepWriter]):
    """Logs (and summarizes) the step's batch and a validation batch, as the classic script did."""
    loss, accuracy = head.metrics(*batch)
    logging.info('%s: Step %d: Train accuracy = %.1f%%', _timestamp(), step, accuracy * 100)
    logging.info('%s: Step %d: Cross entropy = %f', _timestamp(), step, loss)
    if train_writer:
        train_writer.write(step, {'accuracy': accuracy, 'cross_entropy': loss},
                           {'final_layer/weights': head.weights, 'final_layer/biases': head.biases})
    if validation_sampler is None:
        return
    x, y = _eval_batch(data, 'validation', config.validation_batch_size, validation_sampler)
    loss, accuracy = head.metrics(x, y)
    logging.info('%s: Step %d: Validation accuracy = %.1f%% (N=%d)', _timestamp(), step,
                 accuracy * 100, len(y))
    if validation_writer:
        validation_writer.write(step, {'accuracy': accuracy, 'cross_entropy': loss})


def test(data: Bottlenecks, head: Head, labels: List[str], batch_size: int = -1,
         print_misclassified: bool = False, random_seed: Optional[int] = None) -> float:
    """Logs `Final test accuracy`; over the whole test set unless batch_size says otherwise."""
    x, y = data.features['testing'], data.labels['testing']
    paths = data.paths['testing']
    if not len(y):
        logging.warning('No test images: Final test accuracy is not available')
        return float('nan')
    if batch_size >= 0:
        num_classes = len(labels)
        chosen = ClassSampler(y, num_classes, np.random.default_rng(random_seed)).sample(batch_size)
        x, y, paths = x[chosen], y[chosen], [paths[i] for i in chosen]
    predictions = head.predict(x).argmax(axis=1)
    accuracy = float(np.mean(predictions == y))
    logging.info('Final test accuracy = %.1f%% (N=%d)', accuracy * 100, len(y))
    if print_misclassified:
        logging.info('=== MISCLASSIFIED TEST IMAGES ===')
        for path, predicted, truth in zip(paths, predictions, y):
            if predicted != truth:
                logging.info('%70s  %s', path, labels[predicted])
    return accuracy
