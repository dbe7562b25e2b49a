"""Training the new softmax layer on bottlenecks held in memory.

The semantics are the classic ones (COMPATIBILITY.md section 5): weights from a truncated normal
with stddev 0.001, zero biases, sparse softmax cross-entropy, plain gradient descent; each step
draws a class uniformly and then an image of it uniformly, with replacement. What changed is the
speed: bottlenecks are one array in memory, no file is touched per step, and all the steps between
two evaluations run in one TensorFlow call on example indices drawn beforehand in the classic order
(the same draws as one step at a time, so a seed gives the same weights as before).
"""
import dataclasses
import datetime
from typing import Callable, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain import interrupts
from retrain.bottleneck_cache import Bottlenecks
from retrain.errors import RetrainError

# The classic sampler drew an image index below this and took it modulo the class size.
_INDEX_RANGE = 2 ** 27


@dataclasses.dataclass
class TrainingConfig:
    how_many_training_steps: int = 4000
    learning_rate: float = 0.01
    train_batch_size: int = 100
    validation_batch_size: int = 100
    test_batch_size: int = -1
    eval_step_interval: int = 10
    summaries_dir: str = ''
    random_seed: Optional[int] = None


@dataclasses.dataclass
class Head:
    """The trained layer: logits = x @ weights + biases, then softmax."""
    weights: np.ndarray
    biases: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.weights + self.biases
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


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


def _timestamp() -> str:
    return str(datetime.datetime.now())


class _Trainer:
    """Variables, the compiled step and evaluation for one training run."""

    def __init__(self, data: Bottlenecks, num_classes: int, config: TrainingConfig,
                 rng: np.random.Generator):
        size = data.features['training'].shape[1]
        seed = rng.integers(2 ** 31, size=2)
        self.weights = tf.Variable(tf.random.stateless_truncated_normal(
            [size, num_classes], seed=seed, stddev=0.001), name='final_weights')
        self.biases = tf.Variable(tf.zeros([num_classes]), name='final_biases')
        self.learning_rate = config.learning_rate
        self.train_x = tf.constant(data.features['training'])
        self.train_y = tf.constant(data.labels['training'])

    def _metrics(self, x, y):
        logits = tf.matmul(x, self.weights) + self.biases
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), y), tf.float32))
        return loss, accuracy, logits

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64)])
    def steps(self, indices):
        """Runs one step per row of `indices` [k, B] in a single call; the last step's metrics.

        The loop runs inside TensorFlow, so a step costs its arithmetic, not a Python round trip.
        """
        loss, accuracy = tf.constant(0.0), tf.constant(0.0)
        for i in tf.range(tf.shape(indices)[0]):
            loss, accuracy = self._update(tf.gather(self.train_x, indices[i]),
                                          tf.gather(self.train_y, indices[i]))
        return loss, accuracy

    @tf.function
    def step_on(self, x, y):
        """One gradient step on a given batch (bottlenecks [B, D], labels [B])."""
        return self._update(x, y)

    def _update(self, x, y):
        with tf.GradientTape() as tape:
            loss, accuracy, _ = self._metrics(x, y)
        grad_w, grad_b = tape.gradient(loss, [self.weights, self.biases])
        self.weights.assign_sub(self.learning_rate * grad_w)
        self.biases.assign_sub(self.learning_rate * grad_b)
        return loss, accuracy

    @tf.function
    def evaluate(self, x, y):
        loss, accuracy, logits = self._metrics(x, y)
        return loss, accuracy, tf.argmax(logits, 1)

    def head(self) -> Head:
        return Head(self.weights.numpy(), self.biases.numpy())


class _Summaries:
    """A summary writer whose writes are compiled: eager histograms cost milliseconds each."""

    def __init__(self, path: str):
        self.writer = tf.summary.create_file_writer(path)

    @tf.function
    def write(self, step, loss, accuracy, weights=None, biases=None):
        with self.writer.as_default(step=step):
            tf.summary.scalar('accuracy', accuracy)
            tf.summary.scalar('cross_entropy', loss)
            if weights is not None:
                tf.summary.histogram('final_layer/weights', weights)
                tf.summary.histogram('final_layer/biases', biases)

    def flush(self) -> None:
        self.writer.flush()


def _writers(summaries_dir: str):
    if not summaries_dir:
        return None, None
    return (_Summaries(f'{summaries_dir.rstrip("/")}/train'),
            _Summaries(f'{summaries_dir.rstrip("/")}/validation'))


def _eval_batch(data: Bottlenecks, category: str, batch_size: int,
                sampler: Optional[ClassSampler]) -> Tuple[np.ndarray, np.ndarray]:
    """The whole split for batch_size -1, else a batch drawn like the training batches."""
    x, y = data.features[category], data.labels[category]
    if batch_size < 0 or sampler is None:
        return x, y
    chosen = sampler.sample(batch_size)
    return x[chosen], y[chosen]


def _stop_steps(steps: int, eval_interval: int, checkpoint_every: int) -> List[int]:
    """The steps after which Python must act: evaluations, checkpoints and the last step."""
    stops = set(range(0, steps, eval_interval)) | {steps - 1} if steps > 0 else set()
    if checkpoint_every:
        stops |= set(range(checkpoint_every, steps, checkpoint_every))
    return sorted(stops)


def train(data: Bottlenecks, num_classes: int, config: TrainingConfig,
          on_checkpoint: Optional[Callable[[int, Head], None]] = None,
          checkpoint_every: int = 0,
          training_batches: Optional[Callable[[np.ndarray], Tuple[tf.Tensor, tf.Tensor]]] = None
          ) -> Head:
    """Trains the layer, logging the classic lines; returns its weights.

    `on_checkpoint(step, head)` is called every `checkpoint_every` steps (intermediate graphs).
    `training_batches(indices)`, if given, supplies each step's (bottlenecks, labels) for the
    training examples the sampler drew, instead of the cached ones (distorted images).
    """
    if not len(data.labels['training']):
        raise RetrainError('no training images: every image fell into validation or testing')
    if config.eval_step_interval < 1 or config.train_batch_size < 1:
        raise RetrainError('--eval_step_interval and --train_batch_size must be at least 1')
    rng = np.random.default_rng(config.random_seed)
    trainer = _Trainer(data, num_classes, config, rng)
    train_sampler = ClassSampler(data.labels['training'], num_classes, rng)
    validation_sampler = (ClassSampler(data.labels['validation'], num_classes, rng)
                          if len(data.labels['validation']) else None)
    train_writer, validation_writer = _writers(config.summaries_dir)
    steps, batch_size = config.how_many_training_steps, config.train_batch_size
    stops = _stop_steps(steps, config.eval_step_interval, checkpoint_every if on_checkpoint else 0)
    for first, i in zip([0] + [s + 1 for s in stops], stops):
        interrupts.check()
        if training_batches is None:  # Steps first..i in one call, on indices drawn up front.
            indices = np.stack([train_sampler.sample(batch_size) for _ in range(first, i + 1)])
            loss, accuracy = trainer.steps(tf.constant(indices))
        else:
            for _ in range(first, i + 1):
                loss, accuracy = trainer.step_on(*training_batches(
                    train_sampler.sample(batch_size)))
        is_last_step = i + 1 == steps
        if i % config.eval_step_interval == 0 or is_last_step:
            logging.info('%s: Step %d: Train accuracy = %.1f%%', _timestamp(), i,
                         float(accuracy) * 100)
            logging.info('%s: Step %d: Cross entropy = %f', _timestamp(), i, float(loss))
            _summarize(train_writer, i, loss, accuracy, trainer)
            if validation_sampler is not None:
                x, y = _eval_batch(data, 'validation', config.validation_batch_size,
                                   validation_sampler)
                v_loss, v_accuracy, _ = trainer.evaluate(x, y)
                logging.info('%s: Step %d: Validation accuracy = %.1f%% (N=%d)', _timestamp(), i,
                             float(v_accuracy) * 100, len(y))
                _summarize(validation_writer, i, v_loss, v_accuracy)
        if checkpoint_every and on_checkpoint and i > 0 and i % checkpoint_every == 0:
            on_checkpoint(i, trainer.head())
    for writer in (train_writer, validation_writer):
        if writer:
            writer.flush()
    return trainer.head()


def _summarize(writer: Optional[_Summaries], step: int, loss, accuracy,
               trainer: Optional[_Trainer] = None) -> None:
    if writer is None:
        return
    layer = (trainer.weights, trainer.biases) if trainer is not None else ()
    writer.write(tf.constant(step, tf.int64), loss, accuracy, *layer)


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
