"""One --multi_label run: gather labelled images, cache bottlenecks, train sigmoids, test, export.

The steps and outputs are those of retrain.pipeline; what differs is where labels come from
(retrain.multilabel_lists), the layer and sampler (retrain.multilabel_training) and the test
metrics. The exported graph keeps every entry point; `final_result` is a sigmoid per label.
"""
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from retrain import (bottleneck_cache, export, multilabel_lists, multilabel_training, pipeline,
                     summaries, tflite_export, training)
from retrain.config import RetrainConfig
from retrain.errors import RetrainError
from retrain.image_lists import CATEGORIES


def check_flags(config: RetrainConfig) -> None:
    """Flags that need --multi_label or that it does not (yet) support: one clear error."""
    if not config.multi_label:
        raise RetrainError('--image_labels_dir and --image_labels_file need --multi_label')
    unsupported = [name for name, value in (
        ('--flip_left_right', config.flip_left_right), ('--random_crop', config.random_crop),
        ('--random_scale', config.random_scale), ('--random_brightness', config.random_brightness),
        ('--fine_tune_steps', config.fine_tune_steps)) if value]
    if unsupported:
        raise RetrainError(f'{", ".join(unsupported)} cannot be used with --multi_label yet')


def run(config: RetrainConfig) -> float:
    """Runs the whole multi-label job; returns the final test accuracy (per label)."""
    check_flags(config)
    started = time.monotonic()
    if config.random_seed is not None:  # Otherwise some (GPU) kernels vary from run to run.
        tf.config.experimental.enable_op_determinism()
    found = multilabel_lists.gather(config.image_dir, config.testing_percentage,
                                    config.validation_percentage, config.image_labels_dir,
                                    config.image_labels_file)
    labels = found.labels
    logging.info('Found %d labels in %s: %d training, %d validation, %d testing images',
                 len(labels), config.image_dir,
                 *(len(found.images[category]) for category in CATEGORIES))
    extractor = pipeline.load_extractor(config)
    classes = found.cache_classes()
    if config.beam_runner:
        from retrain import beam_cache  # pylint: disable=import-outside-toplevel
        beam_cache.fill_run_cache(config, classes, extractor)
    data, _ = bottleneck_cache.load_or_compute(config.image_dir, classes, config.bottleneck_dir,
                                               extractor, config.cache_batch_size,
                                               config.allow_truncated_images)
    data = with_label_sets(data, found, config.image_dir)
    pipeline._prepare_summaries_dir(config.summaries_dir)  # pylint: disable=protected-access

    def store_intermediate(step: int, head: training.Head) -> None:
        path = export.intermediate_graph_path(config.intermediate_output_graphs_dir, step)
        logging.info('Save intermediate result to : %s', path)
        export.write_graph(path, export.build_graph(extractor, head, config.final_tensor_name))

    head = training.train(
        data, len(labels),
        training.TrainingConfig(
            how_many_training_steps=config.how_many_training_steps,
            learning_rate=config.learning_rate, train_batch_size=config.train_batch_size,
            validation_batch_size=config.validation_batch_size,
            test_batch_size=config.test_batch_size, eval_step_interval=config.eval_step_interval,
            summaries_dir=config.summaries_dir, random_seed=config.random_seed),
        on_checkpoint=store_intermediate, checkpoint_every=config.intermediate_store_frequency,
        head_type=multilabel_training.SigmoidHead, sampler_type=multilabel_training.LabelSampler)
    results = multilabel_training.test(data, head, labels, config.test_batch_size,
                                       config.print_misclassified_test_images, config.random_seed)
    graph_def = export.build_graph(extractor, head, config.final_tensor_name)
    export.write_graph(config.output_graph, graph_def)
    logging.info('Wrote graph to %s', config.output_graph)
    if config.tflite_output_file:
        tflite_graph = tflite_export.classifier_graph(extractor, head, config.final_tensor_name)
        tflite_export.write_tflite(config.tflite_output_file, tflite_graph, extractor.image_size,
                                   config.final_tensor_name + ':0', config.tflite_quantize,
                                   data.paths['training'], config.random_seed)
    # The new layer's graph; the confusion matrix of single-label runs has no meaning here.
    summaries.write_final(config.summaries_dir, labels, np.zeros(0), np.zeros(0), head,
                          config.final_tensor_name, config.how_many_training_steps)
    export.write_labels(config.output_labels, labels)
    logging.info('Wrote labels to %s', config.output_labels)
    if config.saved_model_dir:
        export.write_saved_model(config.saved_model_dir, graph_def,
                                 output_tensor=config.final_tensor_name + ':0')
        logging.info('Wrote SavedModel to %s', config.saved_model_dir)
    logging.info('Done in %.1f s', time.monotonic() - started)
    return results.get('accuracy', float('nan'))


def with_label_sets(data: bottleneck_cache.Bottlenecks, found: multilabel_lists.MultiLabelImages,
                    image_dir: str) -> bottleneck_cache.Bottlenecks:
    """The same bottlenecks with 0/1 label rows [n, labels] in place of folder indices."""
    index = {label: i for i, label in enumerate(found.labels)}
    rows = {}
    for category in CATEGORIES:
        for image in found.images[category]:
            row = np.zeros(len(found.labels), np.float32)
            row[[index[label] for label in image.labels]] = 1.0
            rows[os.path.join(image_dir, image.folder, image.relative)] = row
    labels = {category: (np.stack([rows[path] for path in data.paths[category]])
                         if data.paths[category] else np.zeros((0, len(found.labels)), np.float32))
              for category in CATEGORIES}
    return bottleneck_cache.Bottlenecks(data.features, labels, data.paths)
