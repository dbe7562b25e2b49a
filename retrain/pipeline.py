"""One retrain run from start to finish: find images, cache bottlenecks, train, test, export."""
import contextlib
import functools
import os
import time
from typing import Iterator

import numpy as np
import tensorflow as tf
from absl import logging
# Public TensorFlow can switch op determinism on, but not off nor tell whether it is on.
from tensorflow.python.framework import config as tf_framework_config

from retrain.cache import bottleneck_files
from retrain.common import interrupts
from retrain.data import image_lists
from retrain.export import frozen_graph, staging, tflite
from retrain.report import page, run_report
from retrain.tasks import multi_label
from retrain.train import distortions, fine_tuning, multilabel_training, tensorboard_final, training
from retrain.config import RetrainConfig
from retrain.features.extractors import FeatureExtractor, load_hub_module


def load_extractor(config: RetrainConfig) -> FeatureExtractor:
    """The hub module, or the legacy frozen graph when the classic legacy flags ask for it."""
    if config.use_legacy_model:
        from retrain.features import legacy_models  # pylint: disable=import-outside-toplevel
        return legacy_models.load_architecture(config.architecture, config.model_dir)
    return load_hub_module(config.tfhub_module, config.image_size)


@contextlib.contextmanager
def _op_determinism(wanted: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of a seeded run (otherwise some GPU kernels vary
    from run to run); then as before, since unseeded random ops fail while it is on."""
    if not wanted or tf_framework_config.is_op_determinism_enabled():
        yield
        return
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        tf_framework_config.disable_op_determinism()


def run(config: RetrainConfig) -> float:
    """Runs the whole job described by `config`; returns the final test accuracy (NaN when
    there is none: no test images, or 0 training steps, which only fill the bottleneck cache).

    Process-wide TensorFlow state is as it was when it returns."""
    config.check()
    with _op_determinism(config.random_seed is not None):
        return _run(config)


def _run(config: RetrainConfig) -> float:
    started = time.monotonic()
    distortion = distortions.DistortionConfig(config.flip_left_right, config.random_crop,
                                              config.random_scale, config.random_brightness)
    run_report.check_report_dir(config.report_dir)
    if config.multi_label:
        found, classes = multi_label.gather(config)
        labels = found.labels
    else:
        classes = image_lists.create_image_lists(config.image_dir, config.testing_percentage,
                                                 config.validation_percentage)
        labels = [c.label for c in classes]
        train_count, validation_count, test_count = image_lists.split_counts(classes)
        logging.info('Found %d classes in %s: %d training, %d validation, %d testing images',
                     len(classes), config.image_dir, train_count, validation_count, test_count)
    staging.check_run(config)  # Before any work: a run must not fail at its end.
    extractor = load_extractor(config)
    frozen_graph.check_exportable(extractor)
    if config.beam_runner:
        from retrain.cache import beam_fill  # pylint: disable=import-outside-toplevel
        beam_fill.fill_run_cache(config, classes, extractor,
                                  functools.partial(load_extractor, config))
    data, _ = bottleneck_files.load_or_compute(config.image_dir, classes, config.bottleneck_dir,
                                               extractor, config.cache_batch_size,
                                               config.allow_truncated_images)
    if config.multi_label:
        data = multi_label.with_label_sets(data, found, config.image_dir)
    if not config.how_many_training_steps:
        logging.info('--how_many_training_steps 0: the bottleneck cache is filled; no model is '
                     'trained or written')
        return float('nan')
    tensorboard_final.clear_earlier_runs(config.summaries_dir)
    tuning = config.fine_tune_steps > 0 and bool(fine_tuning.tunable_variables(extractor))
    batches = (distortions.training_batches(data.paths['training'], data.labels['training'],
                                            extractor, distortion, config.random_seed,
                                            allow_truncated=config.allow_truncated_images)
               if distortion.enabled or tuning else None)

    def store_intermediate(step: int, head: training.Head) -> None:
        path = frozen_graph.intermediate_graph_path(config.intermediate_output_graphs_dir, step)
        logging.info('Save intermediate result to : %s', path)
        frozen_graph.write_graph(path, frozen_graph.build_graph(extractor, head, config.final_tensor_name))

    head = training.train(
        data, len(labels), config, on_checkpoint=store_intermediate,
        checkpoint_every=config.intermediate_store_frequency,
        training_batches=batches if distortion.enabled else None,
        head_type=multilabel_training.SigmoidHead if config.multi_label else training.Head)
    if config.fine_tune_steps:
        head = fine_tuning.fine_tune(batches, head, extractor, data, config)
        interrupts.check()  # Before anything is written to the output paths.
    if config.multi_label:
        accuracy = multilabel_training.test(
            data, head, labels, config.test_batch_size, config.print_misclassified_test_images,
            config.random_seed).get('accuracy', float('nan'))
        findings_page = None  # The findings are those of single-label classes (not yet for sets).
        # The new layer's graph; a confusion matrix of classes has no meaning here.
        truth = predictions = np.zeros(0, np.int64)
    else:
        accuracy = training.test(data, head, labels, config.test_batch_size,
                                 config.print_misclassified_test_images, config.random_seed)
        findings_page = (run_report.report_run(config, classes, data, head, accuracy)
                      if config.report or config.report_dir else None)
        truth = data.labels['testing']
        predictions = head.predict(data.features['testing']).argmax(axis=1)
    tensorboard_final.write_final(config.summaries_dir, labels, truth, predictions, head,
                          config.final_tensor_name, config.how_many_training_steps)
    with staging.staged() as stage:  # All outputs are this run's, or all are as they were.
        graph_def = frozen_graph.build_graph(extractor, head, config.final_tensor_name)
        with stage.output(config.output_graph) as path:
            frozen_graph.write_graph(path, graph_def)
        if config.tflite_output_file:
            tflite_graph = tflite.classifier_graph(extractor, head, config.final_tensor_name)
            with stage.output(config.tflite_output_file) as path:
                tflite.write_tflite(path, tflite_graph, extractor.image_size,
                                           config.final_tensor_name + ':0', config.tflite_quantize,
                                           data.paths['training'], config.random_seed,
                                           allow_truncated=config.allow_truncated_images,
                                           labels=labels,
                                           description=f'A classifier of {len(labels)} classes '
                                           f'retrained on {extractor.description}.')
        with stage.output(config.output_labels) as path:
            frozen_graph.write_labels(path, labels)
        if config.saved_model_dir:
            with stage.output(config.saved_model_dir) as path:
                frozen_graph.write_saved_model(path, graph_def,
                                         output_tensor=config.final_tensor_name + ':0',
                                         labels=labels)
        if findings_page:
            with stage.output(config.report_dir) as path:
                page.write(path, findings_page)
    logging.info('Wrote graph to %s', config.output_graph)
    if config.tflite_output_file:
        quantization = {'none': 'float'}.get(config.tflite_quantize,
                                              f'{config.tflite_quantize} quantization')
        logging.info('Wrote TensorFlow Lite model (%s, %d bytes) to %s', quantization,
                     tf.io.gfile.stat(config.tflite_output_file).length,
                     config.tflite_output_file)
    logging.info('Wrote labels to %s', config.output_labels)
    if config.saved_model_dir:
        logging.info('Wrote SavedModel to %s', config.saved_model_dir)
    if findings_page:
        logging.info('Wrote report to %s', os.path.join(config.report_dir, page.HTML))
    logging.info('Done in %.1f s', time.monotonic() - started)
    return accuracy
