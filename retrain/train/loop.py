"""Training the new layer (retrain.train.heads) on bottlenecks held in memory.

The semantics are the classic ones (docs/COMPATIBILITY.md section 6): weights from a truncated
normal with stddev 0.001, zero biases, sparse softmax cross-entropy, plain gradient descent; each
step draws a class uniformly and then an image of it uniformly, with replacement; every
`eval_step_interval` steps the train accuracy and cross entropy of the step's batch (after its
update) and those of a validation batch are logged. What changed is the speed: bottlenecks are one
array in memory, no file is touched per step, and the layer trains in NumPy. A step is a gather and
two [B, D] x [D, classes] products, a few hundred microseconds of arithmetic; any call into
TensorFlow per step (or per iteration of a compiled loop) would add more than that
(bench/bench_multilabel.py measures it: 4000 steps of 1001 x 5 take 1.8 s on 2 AMD EPYC cores).
"""
import datetime
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common import interrupts
from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.train.heads import Head
from retrain.train.sampler import Sampler
from retrain.train.tensorboard_steps import StepWriter, run_writers


def _timestamp() -> str:
    return str(datetime.datetime.now())


def _eval_batch(data: Bottlenecks, category: str, batch_size: int,
                sampler: Optional[Sampler]) -> Tuple[np.ndarray, np.ndarray]:
    """The whole split for batch_size -1, else a batch drawn like the training batches."""
    x, y = data.features[category], data.labels[category]
    if batch_size < 0 or sampler is None:
        return x, y
    chosen = sampler.sample(batch_size)
    return x[chosen], y[chosen]


@np.errstate(over='ignore', invalid='ignore')  # Divergence is one error line (_check_finite).
def train(data: Bottlenecks, num_classes: int, config: RetrainConfig,
          on_checkpoint: Optional[Callable[[int, Head], None]] = None,
          checkpoint_every: int = 0,
          training_batches: Optional[Callable[[np.ndarray], Tuple[tf.Tensor, tf.Tensor]]] = None,
          head_type: type = Head, log: bool = True) -> Head:
    """Trains the layer, logging the classic lines (unless not `log`: no lines, no TensorBoard
    files); returns its weights.

    `on_checkpoint(step, head)` is called every `checkpoint_every` steps (intermediate graphs).
    `training_batches(indices)`, if given, supplies each step's (bottlenecks, labels) for the
    training examples the sampler drew, instead of the cached ones (distorted images).
    `head_type` is the layer to train (retrain.train.heads): a softmax, or a sigmoid per label.
    """
    if not len(data.labels['training']):
        raise ToolError('no training images: every image fell into validation or testing')
    rng = np.random.default_rng(config.random_seed)
    # A head that trains centred (heads.Head.trains_centered) sees bottlenecks minus this, and
    # is written back for bottlenecks as they are wherever it leaves the loop. Only the splits
    # the loop reads are centred: a copy of the test images' would go unused.
    center = data.features['training'].mean(0) if head_type.trains_centered else None
    if center is not None:
        data = Bottlenecks({split: data.features[split] - center
                            for split in ('training', 'validation')}, data.labels, data.paths)
    train_x, train_y = data.features['training'], data.labels['training']
    head = head_type.initial(train_x.shape[1], num_classes, rng)
    train_sampler = Sampler(train_y, num_classes, rng)
    validation_sampler = (Sampler(data.labels['validation'], num_classes, rng)
                          if len(data.labels['validation']) else None)
    writers = run_writers(config.summaries_dir) if log else {}
    train_writer, validation_writer = writers.get('train'), writers.get('validation')
    steps = config.how_many_training_steps
    for i in range(steps):
        interrupts.check()  # A flag: cheap, and distorted steps can take a second each.
        chosen = train_sampler.sample(config.train_batch_size)
        if training_batches is None:
            x, y = train_x[chosen], train_y[chosen]
        else:
            x, y = (t.numpy() for t in training_batches(chosen))
            x = x if center is None else x - center
        head.step(x, y, config.learning_rate)
        if log and (i % config.eval_step_interval == 0 or i + 1 == steps):
            _check_finite(head, i + 1)
            _evaluate(i, head, (x, y), data, config, validation_sampler,
                      train_writer, validation_writer)
        if checkpoint_every and on_checkpoint and i > 0 and i % checkpoint_every == 0:
            on_checkpoint(i, _as_is(head.copy(), center))
    for writer in writers.values():
        writer.close()
    _check_finite(head, steps)
    return _as_is(head, center)


def _check_finite(head: Head, steps: int) -> None:
    """Raises ToolError for a layer that a far too high rate has made infinite or NaN (its
    summaries, then every output, would be NaN)."""
    if not (np.isfinite(head.weights).all() and np.isfinite(head.biases).all()):
        raise ToolError(f'training diverged: the new layer is not finite after {steps} steps; '
                        'lower --learning_rate')


def _as_is(head: Head, center: Optional[np.ndarray]) -> Head:
    """The head for bottlenecks as they are (it trained on them minus `center`, if given)."""
    return head if center is None else head.uncentered(center)


def layer_trainer(num_classes: int, config: RetrainConfig, temperature: float = 1.0
                  ) -> Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    """A function training the layer again, quietly and as configured, on the bottlenecks and
    class indices it is given; it returns (weights, biases) giving logits / `temperature`
    (unknown.fit's layer_on: the logits of images the layer has not seen)."""
    def layer(x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        fold = Bottlenecks({'training': x, 'validation': x[:0]},
                           {'training': y, 'validation': y[:0]},
                           {'training': [], 'validation': []})
        trained = train(fold, num_classes, config, log=False)
        return trained.weights / temperature, trained.biases / temperature
    return layer


def _evaluate(step: int, head: Head, batch: Tuple[np.ndarray, np.ndarray], data: Bottlenecks,
              config: RetrainConfig, validation_sampler: Optional[Sampler],
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
