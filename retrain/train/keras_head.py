"""make_image_classifier's head, trained by epochs: dropout, a dense softmax layer with l1/l2
kernel penalties, categorical cross-entropy with label smoothing, SGD with momentum.

The meanings are those of its Keras model: Dense weights start Glorot-uniform with zero biases;
dropout (inverted, as Keras scales) applies in training only; the loss is the batch mean of the
smoothed cross-entropy plus l1 * sum|W| + l2 * sum W^2; SGD keeps a velocity v = m * v - lr * g
and adds it; an epoch is len(training) // batch_size batches of a fresh shuffle, at least one
(then of every training image, fewer than batch_size; steps_per_epoch). Each epoch logs
Keras' line (`loss`, `accuracy`, `val_loss`, `val_accuracy`: what its users grep) and writes
`epoch_loss` / `epoch_accuracy` to TensorBoard as Keras' callback did. The arithmetic runs in
NumPy on the cached bottlenecks (retrain.train.loop says why); validation uses every validation
image (Keras used whole batches only).
"""
import dataclasses
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common import interrupts
from retrain.common.errors import ToolError
from retrain.train.heads import Head
from retrain.train.tensorboard_steps import run_writers


@dataclasses.dataclass(frozen=True)
class HeadSettings:
    """The hyperparameters make_image_classifier exposed as flags (its defaults)."""
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.005
    momentum: float = 0.9
    dropout_rate: float = 0.2
    l1: float = 0.0
    l2: float = 0.0001
    label_smoothing: float = 0.1


def steps_per_epoch(training_images: int, batch_size: int) -> int:
    """Whole batches per epoch, as its fit() was told (at least one)."""
    return max(1, training_images // batch_size)


def _metrics(head: Head, x: np.ndarray, y: np.ndarray, settings: HeadSettings,
             num_classes: int) -> Tuple[float, float, np.ndarray]:
    """(loss with penalties, accuracy, d loss / d logits) of a batch."""
    probabilities = head.predict(x)
    target = np.full((len(y), num_classes), settings.label_smoothing / num_classes, np.float32)
    target[np.arange(len(y)), y] += 1.0 - settings.label_smoothing
    loss = float(-np.mean(np.sum(target * np.log(np.maximum(probabilities, 1e-7)), axis=1)))
    loss += (settings.l1 * float(np.abs(head.weights).sum())
             + settings.l2 * float(np.square(head.weights).sum()))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y))
    return loss, accuracy, (probabilities - target) / len(y)


@np.errstate(over='ignore', invalid='ignore')  # Divergence is one error line, after the epoch.
def train(data: Bottlenecks, num_classes: int, settings: HeadSettings, summaries_dir: str = '',
          seed: Optional[int] = None,
          training_batches: Optional[Callable[[np.ndarray], Tuple[tf.Tensor, tf.Tensor]]] = None
          ) -> Tuple[Head, Dict[str, float]]:
    """Trains the head; returns it and the last epoch's metrics (`val_accuracy` among them).

    `training_batches(indices)`, if given, supplies each batch's (bottlenecks, labels) from
    augmented images instead of the cached bottlenecks.
    """
    train_x, train_y = data.features['training'], data.labels['training']
    if not len(train_y):
        raise ToolError('no training images: every image fell into the validation split')
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6.0 / (train_x.shape[1] + num_classes))
    head = Head(rng.uniform(-limit, limit, (train_x.shape[1], num_classes)).astype(np.float32),
                np.zeros(num_classes, np.float32))
    velocity = [np.zeros_like(head.weights), np.zeros_like(head.biases)]
    steps = steps_per_epoch(len(train_y), settings.batch_size)
    writers = run_writers(summaries_dir)
    keep = 1.0 - settings.dropout_rate
    history: Dict[str, float] = {}
    for epoch in range(settings.epochs):
        started = time.monotonic()
        order = rng.permutation(len(train_y))
        losses, right, seen = [], 0.0, 0
        for step in range(steps):
            interrupts.check()
            chosen = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            if training_batches is None:
                x, y = train_x[chosen], train_y[chosen]
            else:
                x, y = (t.numpy() for t in training_batches(chosen))
            if settings.dropout_rate:
                x = x * (rng.random(x.shape) < keep) / keep
            loss, accuracy, gradient = _metrics(head, x, y, settings, num_classes)
            losses.append(loss)
            right += accuracy * len(y)
            seen += len(y)
            weight_gradient = (x.T @ gradient + settings.l1 * np.sign(head.weights)
                               + 2 * settings.l2 * head.weights)
            for i, (value, grad) in enumerate(((head.weights, weight_gradient),
                                               (head.biases, gradient.sum(axis=0)))):
                velocity[i] = settings.momentum * velocity[i] - settings.learning_rate * grad
                value += velocity[i].astype(np.float32)
        history = {'loss': float(np.mean(losses)), 'accuracy': right / seen}
        history.update(_validation(head, data, settings, num_classes))
        _log_epoch(epoch, settings.epochs, steps, time.monotonic() - started, history)
        if not np.isfinite(history['loss']):  # Every later epoch, and the model, would be NaN.
            raise ToolError(f'training diverged: the loss is {history["loss"]} in epoch '
                            f'{epoch + 1}; lower --learning_rate (or --momentum)')
        for split, writer in writers.items():
            prefix = 'val_' if split == 'validation' else ''
            if prefix + 'loss' in history:
                writer.write(epoch, {'epoch_loss': history[prefix + 'loss'],
                                     'epoch_accuracy': history[prefix + 'accuracy']})
    for writer in writers.values():
        writer.close()
    return head, history


def _validation(head: Head, data: Bottlenecks, settings: HeadSettings,
                num_classes: int) -> Dict[str, float]:
    """`val_loss` and `val_accuracy` over every validation image (none: no such keys)."""
    x, y = data.features['validation'], data.labels['validation']
    if not len(y):
        return {}
    loss, accuracy, _ = _metrics(head, x, y, settings, num_classes)
    return {'val_loss': loss, 'val_accuracy': accuracy}


def _log_epoch(epoch: int, epochs: int, steps: int, seconds: float,
               history: Dict[str, float]) -> None:
    """Keras' two lines of an epoch (fit with verbose=2)."""
    logging.info('Epoch %d/%d', epoch + 1, epochs)
    logging.info('%d/%d - %.0fs - %s', steps, steps, seconds,
                 ' - '.join(f'{name}: {value:.4f}' for name, value in history.items()))
