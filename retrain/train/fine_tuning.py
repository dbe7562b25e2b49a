"""Fine-tuning: training the module's own variables together with the new layer.

Beyond the classic tools (like make_image_classifier's `--do_fine_tuning`). Once the new layer
has been trained on cached bottlenecks, the module's trainable variables and the layer train
together for a few more steps at a small learning rate, with plain gradient descent as before,
on decoded training images (distorted when the distortion flags ask for it), drawn as the layer's
training drew them (a class, or for a multi-label layer a label, then an image), with the layer's
loss. The cached bottlenecks describe the untuned module, so they are neither used
nor changed; validation and test bottlenecks are recomputed in memory afterwards. The variables
are updated in place, so every output frozen afterwards carries the tuned weights.

The module runs in inference mode (batch normalization on its moving averages, as Keras' guide
to fine-tuning advises), except for make_image_classifier, whose Keras fit ran a trainable TF Hub
module in training mode (`module_training`): at its learning rate, 0.005, the module in
inference mode broke down within 10 steps (measured on 40 flower photos, MobileNet V2: the
validation accuracy fell from 100% to 0%; in training mode it stayed at 100%).
"""
import datetime
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache import bottleneck_files
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common import interrupts
from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.features.extractors import FeatureExtractor
from retrain.train.distortions import ImageBatches
from retrain.train.heads import Head
from retrain.train.sampler import Sampler


class _FineTuner:
    """The layer's variables plus the module's, and the compiled joint step."""

    def __init__(self, batches: ImageBatches, head: Head, extractor: FeatureExtractor,
                 learning_rate: float, module_training: bool):
        self.batches = batches
        self.extractor = extractor
        self.features = (extractor.training_function if module_training
                         and extractor.training_function else extractor)
        self.head_type = type(head)
        self.weights = tf.Variable(head.weights, name='final_weights')
        self.biases = tf.Variable(head.biases, name='final_biases')
        self.variables = [self.weights, self.biases] + list(tunable_variables(extractor))
        self.learning_rate = learning_rate

    @tf.function(autograph=False)
    def step(self, indices):
        images = self.batches.distorted(indices)
        labels = tf.gather(self.batches.labels, indices)
        with tf.GradientTape() as tape:
            logits = tf.matmul(self.features(images), self.weights) + self.biases
            loss, accuracy = self.head_type.tf_metrics(logits, labels)
        gradients = tape.gradient(loss, self.variables)
        if all(g is None for g in gradients[2:]):  # Known while tracing: fail before any step.
            raise ToolError(f'{self.extractor.description} cannot be fine-tuned: none of its '
                            'variables is reachable by gradients through its function')
        for variable, gradient in zip(self.variables, gradients):
            if gradient is not None:
                variable.assign_sub(self.learning_rate * gradient)
        return loss, accuracy

    def head(self) -> Head:
        return self.head_type(self.weights.numpy(), self.biases.numpy())


def tunable_variables(extractor: FeatureExtractor) -> Sequence[tf.Variable]:
    """The module's trainable variables: as it lists them, else those its function reads."""
    return (tuple(extractor.trainable_variables)
            or tuple(extractor.concrete_function().trainable_variables))


def can_tune(extractor: FeatureExtractor) -> bool:
    """Whether the module has variables to tune; where not (a legacy frozen graph), a warning
    that --fine_tune_steps is ignored."""
    if tunable_variables(extractor):
        return True
    logging.warning('%s has no trainable variables: --fine_tune_steps ignored',
                    extractor.description)
    return False


def _recompute(extractor: FeatureExtractor, paths: Sequence[str], batch_size: int,
               allow_truncated: bool) -> np.ndarray:
    features = np.zeros((len(paths), extractor.bottleneck_size), np.float32)
    found = np.zeros(len(paths), bool)
    if not paths:
        return features
    # At full scale, as the images the module was tuned on (distortions.ImageBatches).
    for indices, batch, _ in bottleneck_files.compute_bottlenecks(
            extractor, paths, batch_size, allow_truncated=allow_truncated,
            scaling=[False] * len(paths)):
        features[indices], found[indices] = batch, True
    if not found.all():
        raise ToolError(f'cannot use image {paths[int(np.flatnonzero(~found)[0])]}: it could '
                        'not be decoded again after fine-tuning')
    return features


def fine_tune(batches: ImageBatches, head: Head, extractor: FeatureExtractor,
              data: Bottlenecks, config: RetrainConfig, module_training: bool = False) -> Head:
    """Tunes the module's variables (in place) and the layer; returns the tuned layer. With
    `module_training`, the module runs in training mode where it has one (module doc).

    `data`'s validation and test bottlenecks are replaced by ones of the tuned module, and
    `Fine-tuned validation accuracy` is logged. A module without trainable variables (a legacy
    frozen graph) is left as it is, with a warning.
    """
    if not can_tune(extractor):
        return head
    variables = tunable_variables(extractor)
    tuner = _FineTuner(batches, head, extractor, config.fine_tune_learning_rate,
                       module_training)
    sampler = Sampler(data.labels['training'], head.weights.shape[1],
                      np.random.default_rng(config.random_seed))
    logging.info('Fine-tuning %d variables of %s and the new layer for %d steps',
                 len(variables), extractor.description, config.fine_tune_steps)
    for i in range(config.fine_tune_steps):
        interrupts.check()  # A step can take seconds; a swallowed Ctrl-C stops the loop here.
        loss, accuracy = tuner.step(tf.constant(sampler.sample(config.train_batch_size),
                                                tf.int32))
        if i % config.eval_step_interval == 0 or i + 1 == config.fine_tune_steps:
            now = datetime.datetime.now()
            logging.info('%s: Fine-tune step %d: Train accuracy = %.1f%%', now, i,
                         float(accuracy) * 100)
            logging.info('%s: Fine-tune step %d: Cross entropy = %f', now, i, float(loss))
    tuned = tuner.head()
    extractor.frozen = None  # Its variables changed: caching and export must freeze it anew.
    for category in ('validation', 'testing'):
        data.features[category] = _recompute(extractor, data.paths[category],
                                             config.cache_batch_size,
                                             config.allow_truncated_images)
    if len(data.labels['validation']):
        _, accuracy = tuned.metrics(data.features['validation'], data.labels['validation'])
        logging.info('Fine-tuned validation accuracy = %.1f%% (N=%d)', accuracy * 100,
                     len(data.labels['validation']))
    return tuned
