"""Training a sigmoid per label (--multi_label) on bottlenecks held in memory.

The loop, logging and summaries are those of retrain.train.training (train() with this module's head
and sampler); what differs is the layer and how batches are drawn:
  SigmoidHead   logits = x @ weights + biases as before; scores are independent sigmoids, the
                loss is the sigmoid cross-entropy averaged over images and labels (as
                tf.reduce_mean of tf.nn.sigmoid_cross_entropy_with_logits), accuracy is the
                share of (image, label) pairs right at a 0.5 threshold
  LabelSampler  the classic balance: a label uniformly, then uniformly an image that has it
Labels are 0/1 float32 matrices [images, labels] in place of class indices.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.train import multilabel_metrics
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.train.training import ClassSampler, Head


class LabelSampler(ClassSampler):
    """Draws a label uniformly (among those some image has), then one of its images."""

    def __init__(self, labels: np.ndarray, num_labels: int,  # pylint: disable=super-init-not-called
                 rng: np.random.Generator):
        label_of, self.order = np.nonzero(labels.T)  # Label by label, images in order.
        counts = np.bincount(label_of, minlength=num_labels)
        self.classes = np.flatnonzero(counts)
        self.counts = counts[self.classes]
        self.offsets = np.concatenate([[0], np.cumsum(counts)])[self.classes]
        self.rng = rng


class SigmoidHead(Head):
    """The trained layer of a multi-label run: a sigmoid per label."""
    activation = 'sigmoid'
    sampler = LabelSampler

    @staticmethod
    def tf_metrics(logits: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """(mean sigmoid cross-entropy, per-label accuracy) in TensorFlow."""
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                      logits=logits))
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
        """(mean sigmoid cross-entropy, per-label accuracy) on a batch."""
        logits = self.logits(features)
        loss = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
        return float(np.mean(loss)), multilabel_metrics.label_agreement(labels, logits >= 0)

    def step(self, features: np.ndarray, labels: np.ndarray, learning_rate: float) -> None:
        """One gradient-descent step on the mean cross-entropy, in place: its gradient by the
        logits is (sigmoid - labels) / (images x labels)."""
        gradient = self.predict(features) - labels
        gradient /= labels.size
        self.weights -= learning_rate * (features.T @ gradient)
        self.biases -= learning_rate * gradient.sum(axis=0)


def test(data: Bottlenecks, head: SigmoidHead, labels: List[str], batch_size: int = -1,
         print_misclassified: bool = False,
         random_seed: Optional[int] = None) -> Dict[str, float]:
    """Logs `Final test accuracy` (per label), mAP, macro F1 and exact match; returns them."""
    x, y = data.features['testing'], data.labels['testing']
    paths = data.paths['testing']
    if not len(y):
        logging.warning('No test images: Final test accuracy is not available')
        return {}
    if batch_size >= 0:
        chosen = LabelSampler(y, len(labels), np.random.default_rng(random_seed)).sample(batch_size)
        x, y, paths = x[chosen], y[chosen], [paths[i] for i in chosen]
    predictions = multilabel_metrics.predicted(head.predict(x))
    # Ranked by float64 logits: the float32 sigmoids of a confident layer tie at 0 and 1.
    logits = head.logits(x.astype(np.float64))
    results = {'accuracy': multilabel_metrics.label_agreement(y, predictions),
               'mAP': multilabel_metrics.mean_average_precision(y, logits),
               'macro F1': multilabel_metrics.macro_f1(y, predictions),
               'exact match': multilabel_metrics.exact_match(y, predictions)}
    logging.info('Final test accuracy = %.1f%% (N=%d)', results['accuracy'] * 100, len(y))
    logging.info('Final test mAP = %.3f (N=%d)', results['mAP'], len(y))
    logging.info('Final test macro F1 = %.3f (N=%d)', results['macro F1'], len(y))
    logging.info('Final test exact match = %.1f%% (N=%d)', results['exact match'] * 100, len(y))
    if print_misclassified:
        logging.info('=== MISCLASSIFIED TEST IMAGES ===')
        for path, guess, truth in zip(paths, predictions, y.astype(bool)):
            if (guess != truth).any():
                logging.info('%70s  predicted: %s  true: %s', path, _names(guess, labels),
                             _names(truth, labels))
    return results


def _names(chosen: np.ndarray, labels: List[str]) -> str:
    return ', '.join(label for label, on in zip(labels, chosen) if on) or '(none)'
