"""One make_image_classifier job on retrain's library: its split, bottlenecks from the cache,
its head trained by epochs (retrain.train.keras_head), then the accuracy gate and the outputs.

Augmentation trains the head on distorted images (retrain.train.distortions); fine-tuning then
trains the module with the head (retrain.train.fine_tuning) for as many steps as the epochs held.
Our additions (the run report, ONNX) come from retrain's single-label task and writers, when
asked.
"""
import dataclasses
import time
from typing import Optional

from absl import logging

from retrain import pipeline, tasks
from retrain.cache import bottleneck_files
from retrain.common import interrupts
from retrain.common.errors import ConfigError, ToolError
from retrain.common.graph_names import KERAS_MODEL_KEYS
from retrain.config import RetrainConfig
from retrain.data import keras_split
from retrain.export import frozen_graph, outputs, staging
from retrain.features import loading
from retrain.report import run_report
from retrain.tasks.base import Gathered
from retrain.train import distortions, fine_tuning, keras_head


class AccuracyFailed(ToolError):
    """The last epoch's val_accuracy is below --assert_accuracy_at_least: nothing is written."""


@dataclasses.dataclass(frozen=True)
class Job:
    """What the command line asked for: retrain's settings (paths, module, distortions,
    fine-tuning steps) and the head's."""
    config: RetrainConfig
    head: keras_head.HeadSettings
    validation_split: float
    assert_accuracy_at_least: Optional[float] = None
    fine_tune: bool = False
    tf_data_split: bool = True  # Its tf.data reader's split, else ImageDataGenerator's.


def run(job: Job) -> float:
    """Runs the job; returns the last epoch's validation accuracy (NaN without validation)."""
    started = time.monotonic()
    config = job.config
    labels, examples = keras_split.split_examples(config.image_dir, job.validation_split,
                                                  job.tf_data_split)
    if job.assert_accuracy_at_least and not any(e.split == 'validation' for e in examples):
        raise ConfigError('--assert_accuracy_at_least needs validation images: --validation_split '
                          f'{job.validation_split:g} holds none of these {len(examples)} images')
    if job.fine_tune:  # As many steps through the module as its epochs of batches held.
        training = sum(e.split == 'training' for e in examples)
        steps = job.head.epochs * keras_head.steps_per_epoch(training, job.head.batch_size)
        config = dataclasses.replace(config, fine_tune_steps=steps,
                                     fine_tune_learning_rate=job.head.learning_rate)
    staging.check_run(config)
    extractor = loading.load_extractor(config)
    frozen_graph.check_exportable(extractor)
    logging.info('Using module %s with image size %s', config.tfhub_module, extractor.image_size)
    logging.info('Found %d classes: %s', len(labels), ', '.join(labels))
    data, skipped = bottleneck_files.load_or_compute(
        config.image_dir, examples, config.bottleneck_dir, extractor, config.cache_batch_size,
        config.allow_truncated_images)
    tuning = job.fine_tune and bool(fine_tuning.tunable_variables(extractor))
    batches = (distortions.training_batches(data.paths['training'], data.labels['training'],
                                            extractor, config, config.random_seed)
               if config.distortions_enabled or tuning else None)
    head, history = keras_head.train(data, len(labels), job.head, config.summaries_dir,
                                     config.random_seed,
                                     batches if config.distortions_enabled else None)
    if job.fine_tune:
        head = fine_tuning.fine_tune(batches, head, extractor, data, config,
                                     module_training=True)  # As its Keras fit ran it.
        if len(data.labels['validation']):
            history['val_accuracy'] = head.metrics(data.features['validation'],
                                                   data.labels['validation'])[1]
    interrupts.check()
    accuracy = history.get('val_accuracy', float('nan'))
    _check_accuracy(accuracy, job.assert_accuracy_at_least)
    report = tasks.task_for(config).report(Gathered(labels, examples), data, head,
                                           run_report.UNTESTED, skipped)
    pipeline.write_outputs(outputs.Trained(config, extractor, head, labels,
                                           data.paths['training'], report,
                                           signature_keys=KERAS_MODEL_KEYS))
    logging.info('Done in %.1f s', time.monotonic() - started)
    return accuracy


def _check_accuracy(accuracy: float, at_least: Optional[float]) -> None:
    """Its gate, with its words: `ACCURACY PASSED/FAILED: found x, expected at least y`."""
    if not at_least:
        return
    message = f'found {accuracy:f}, expected at least {at_least:f}'
    if not accuracy >= at_least:
        raise AccuracyFailed(f'ACCURACY FAILED: {message}; no model was exported')
    logging.info('ACCURACY PASSED: %s', message)
