"""One retrain run from start to finish: find images, cache bottlenecks, train, test, export."""
import time

import tensorflow as tf
from absl import logging

from retrain import (bottleneck_cache, distortions, export, fine_tuning, image_lists,
                     interrupts, summaries, tflite_export, training)
from retrain.config import RetrainConfig
from retrain.extractors import FeatureExtractor, load_hub_module


def load_extractor(config: RetrainConfig) -> FeatureExtractor:
    """The hub module, or the legacy frozen graph when the classic legacy flags ask for it."""
    if config.use_legacy_model:
        from retrain import legacy_models  # pylint: disable=import-outside-toplevel
        return legacy_models.load_architecture(config.architecture, config.model_dir)
    return load_hub_module(config.tfhub_module, config.image_size)


def _prepare_summaries_dir(summaries_dir: str) -> None:
    """Classic behaviour: the summaries of earlier runs in that folder are cleared."""
    if not summaries_dir:
        return
    if tf.io.gfile.exists(summaries_dir):
        tf.io.gfile.rmtree(summaries_dir)
    tf.io.gfile.makedirs(summaries_dir)


def run(config: RetrainConfig) -> float:
    """Runs the whole job described by `config`; returns the final test accuracy."""
    if config.multi_label or config.image_labels_dir or config.image_labels_file:
        from retrain import multilabel_pipeline  # pylint: disable=import-outside-toplevel
        return multilabel_pipeline.run(config)
    started = time.monotonic()
    distortion = distortions.DistortionConfig(config.flip_left_right, config.random_crop,
                                              config.random_scale, config.random_brightness)
    distortion.validate()
    if config.random_seed is not None:  # Otherwise some (GPU) kernels vary from run to run.
        tf.config.experimental.enable_op_determinism()
    classes = image_lists.create_image_lists(config.image_dir, config.testing_percentage,
                                             config.validation_percentage)
    train_count, validation_count, test_count = image_lists.split_counts(classes)
    logging.info('Found %d classes in %s: %d training, %d validation, %d testing images',
                 len(classes), config.image_dir, train_count, validation_count, test_count)
    extractor = load_extractor(config)
    if config.beam_runner:
        from retrain import beam_cache  # pylint: disable=import-outside-toplevel
        beam_cache.fill_run_cache(config, classes, extractor)
    data, _ = bottleneck_cache.load_or_compute(config.image_dir, classes, config.bottleneck_dir,
                                               extractor, config.cache_batch_size,
                                               config.allow_truncated_images)
    labels = [c.label for c in classes]
    _prepare_summaries_dir(config.summaries_dir)
    tuning = config.fine_tune_steps > 0 and bool(fine_tuning.tunable_variables(extractor))
    batches = (distortions.training_batches(data.paths['training'], data.labels['training'],
                                            extractor, distortion, config.random_seed,
                                            allow_truncated=config.allow_truncated_images)
               if distortion.enabled or tuning else None)

    def store_intermediate(step: int, head: training.Head) -> None:
        path = export.intermediate_graph_path(config.intermediate_output_graphs_dir, step)
        logging.info('Save intermediate result to : %s', path)
        export.write_graph(path, export.build_graph(extractor, head, config.final_tensor_name))

    head = training.train(
        data, len(classes),
        training.TrainingConfig(
            how_many_training_steps=config.how_many_training_steps,
            learning_rate=config.learning_rate, train_batch_size=config.train_batch_size,
            validation_batch_size=config.validation_batch_size,
            test_batch_size=config.test_batch_size, eval_step_interval=config.eval_step_interval,
            summaries_dir=config.summaries_dir, random_seed=config.random_seed),
        on_checkpoint=store_intermediate, checkpoint_every=config.intermediate_store_frequency,
        training_batches=batches if distortion.enabled else None)
    if config.fine_tune_steps:
        head = fine_tuning.fine_tune(batches, head, extractor, data, len(classes),
                                     fine_tuning.FineTuneConfig(
                                         config.fine_tune_steps, config.fine_tune_learning_rate,
                                         config.train_batch_size, config.eval_step_interval,
                                         config.cache_batch_size, config.random_seed,
                                         config.allow_truncated_images))
        interrupts.check()  # Before anything is written to the output paths.
    accuracy = training.test(data, head, labels, config.test_batch_size,
                             config.print_misclassified_test_images, config.random_seed)
    graph_def = export.build_graph(extractor, head, config.final_tensor_name)
    export.write_graph(config.output_graph, graph_def)
    logging.info('Wrote graph to %s', config.output_graph)
    if config.tflite_output_file:
        tflite_graph = tflite_export.classifier_graph(extractor, head, config.final_tensor_name)
        tflite_export.write_tflite(config.tflite_output_file, tflite_graph, extractor.image_size,
                                   config.final_tensor_name + ':0', config.tflite_quantize,
                                   data.paths['training'], config.random_seed)
    summaries.write_final(config.summaries_dir, labels, data.labels['testing'],
                          head.predict(data.features['testing']).argmax(axis=1), head,
                          config.final_tensor_name, config.how_many_training_steps)
    export.write_labels(config.output_labels, labels)
    logging.info('Wrote labels to %s', config.output_labels)
    if config.saved_model_dir:
        export.write_saved_model(config.saved_model_dir, graph_def,
                                 output_tensor=config.final_tensor_name + ':0')
        logging.info('Wrote SavedModel to %s', config.saved_model_dir)
    logging.info('Done in %.1f s', time.monotonic() - started)
    return accuracy
