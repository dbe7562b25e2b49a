"""The new layer trained on top of the bottlenecks: logits = x @ weights + biases, then a
softmax (a class per image, docs/COMPATIBILITY.md section 6) or a sigmoid per label
(--multi_label).

Each head brings its own loss, gradient step and metrics in NumPy (training runs outside
TensorFlow: retrain.train.loop says why) and the same in TensorFlow for fine-tuning through the
module. For the sigmoid head, the loss is the sigmoid cross-entropy summed over labels and
averaged over images, and accuracy is the share of (image, label) pairs right at a 0.5
threshold; its labels are 0/1 float32 rows. Summed, not averaged, over labels: the gradient by
each logit is then (sigmoid - label) / images, as a softmax logit's is (softmax - one_hot) /
images, so every label learns at the classic rate whatever the number of labels (averaged, a
run with 20 labels learnt 20 times slower and stopped short of its best at the usual step counts).
The sigmoid head also trains on bottlenecks centred on the training images' mean
(`trains_centered`, retrain.train.loop) and is then written back for bottlenecks as they are:
bottlenecks are all positive, and their shared mean makes gradient steps crawl along every
other direction. Its steps carry momentum (`MOMENTUM`, the heavy ball of Keras' SGD): a label's
logistic loss flattens out long before its best, so plain steps at the classic rate stopped
short (measured with bench/bench_multilabel_quality.py on five sets: 500 steps with momentum
do as well as 4000 without). The softmax head steps plainly, as the classic script did.
"""
import dataclasses
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from retrain.train import multilabel_metrics

_INITIAL_STDDEV = 0.001


@dataclasses.dataclass
class Head:
    """The trained layer: logits = x @ weights + biases, then softmax."""
    weights: np.ndarray
    biases: np.ndarray
    activation = 'softmax'  # Of the exported graph's final_result (retrain.export.frozen_graph).
    trains_centered = False  # On bottlenecks minus their training mean (module doc).

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

    def uncentered(self, center: np.ndarray) -> 'Head':
        """This layer, trained on bottlenecks minus `center`, for bottlenecks as they are:
        (x - center) @ weights + biases = x @ weights + (biases - center @ weights)."""
        shift = center.astype(np.float64) @ self.weights.astype(np.float64)
        return type(self)(self.weights.copy(), (self.biases - shift).astype(np.float32))

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


@dataclasses.dataclass
class SigmoidHead(Head):
    """The trained layer of a multi-label run: a sigmoid per label."""
    # The step's velocity (weights', biases'): zero at first, so the first step is a plain one.
    velocity: Optional[Tuple[np.ndarray, np.ndarray]] = dataclasses.field(
        default=None, repr=False, compare=False)
    activation = 'sigmoid'
    trains_centered = True
    MOMENTUM = 0.9

    @staticmethod
    def tf_metrics(logits: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(sigmoid cross-entropy summed over labels, mean over images; per-label accuracy) in
        TensorFlow."""
        loss = tf.reduce_mean(tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=1))
        agree = tf.equal(logits >= 0, labels > 0.5)
        return loss, tf.reduce_mean(tf.cast(agree, tf.float32))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The layer before its sigmoids, in the precision of `features` (float64 keeps the
        order of images that float32 scores would tie)."""
        return features @ self.weights + self.biases

    def predict(self, features: np.ndarray) -> np.ndarray:
        # 1 / (1 + exp(-z)) without overflow for large |z|.
        return 0.5 * (1.0 + np.tanh(0.5 * self.logits(features)))

    def metrics(self, features: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
        """(sigmoid cross-entropy summed over labels, mean over images; per-label accuracy) on a
        batch."""
        logits = self.logits(features)
        loss = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
        agreement = multilabel_metrics.label_agreement(labels, logits >= 0)
        return float(np.mean(loss.sum(axis=1))), agreement

    def shifted(self, cuts: np.ndarray) -> 'SigmoidHead':
        """This layer with each label's logit lowered by its cut: a score of 0.5 then means the
        cut, in every output that applies a threshold, with no new field in any format."""
        return SigmoidHead(self.weights.copy(), (self.biases - cuts).astype(np.float32))

    def step(self, features: np.ndarray, labels: np.ndarray, learning_rate: float) -> None:
        """One gradient-descent step with momentum on the loss (the module's docstring), in
        place: its gradient by the logits is (sigmoid - labels) / images; the velocity becomes
        MOMENTUM times itself minus the rate times the gradient, and is added."""
        gradient = self.predict(features) - labels
        gradient /= len(labels)
        weights, biases = self.velocity or (0.0, 0.0)
        self.velocity = (self.MOMENTUM * weights - learning_rate * (features.T @ gradient),
                         self.MOMENTUM * biases - learning_rate * gradient.sum(axis=0))
        self.weights += self.velocity[0]
        self.biases += self.velocity[1]
