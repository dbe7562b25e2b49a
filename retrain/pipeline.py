"""One retrain run from start to finish: find images, cache bottlenecks, train, test, export."""
import contextlib
import dataclasses
import functools
import time
from typing import Iterator, List, Tuple

import tensorflow as tf
from absl import logging

from retrain import tasks
from retrain.cache import bottleneck_files
from retrain.cache.bottleneck_files import Bottlenecks, Skipped
from retrain.common import interrupts
from retrain.common.tf_internals import framework_config
from retrain.config import RetrainConfig
from retrain.export import frozen_graph, outputs, staging, tensorboard_final
from retrain.features import loading
from retrain.features.extractors import FeatureExtractor
from retrain.tasks.base import Gathered
from retrain.train import distortions, fine_tuning, loop
from retrain.train.heads import Head


@contextlib.contextmanager
def _op_determinism(wanted: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of a seeded run (otherwise some GPU kernels vary
    from run to run); then as before, since unseeded random ops fail while it is on."""
    if not wanted or framework_config.is_op_determinism_enabled():
        yield
        return
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        framework_config.disable_op_determinism()


def run(config: RetrainConfig) -> float:
    """Runs the whole job described by `config`; returns the final test accuracy (NaN when
    there is none: no test images, or 0 training steps, which only fill the bottleneck cache).

    Process-wide TensorFlow state is as it was when it returns."""
    with _op_determinism(config.random_seed is not None):
        return _run(config)


def _run(config: RetrainConfig) -> float:
    started = time.monotonic()
    task = tasks.task_for(config)
    gathered = task.gather()
    if config.how_many_training_steps:
        task.check_learnable(gathered)
    staging.check_run(config)  # Before any work: a run must not fail at its end.
    extractor = loading.load_extractor(config)
    frozen_graph.check_exportable(extractor)
    if config.fine_tune_steps and not fine_tuning.can_tune(extractor):
        # A frozen graph has nothing to tune: the run is one without the flag, so its layer keeps
        # the unknown judgement, which only a changed module would invalidate.
        config = task.config = dataclasses.replace(config, fine_tune_steps=0)
    data, skipped = _cache(config, gathered, extractor)
    task.check_usable(gathered, data, training=bool(config.how_many_training_steps))
    if not config.how_many_training_steps:
        logging.info('--how_many_training_steps 0: the bottleneck cache is filled; no model is '
                     'trained or written')
        return float('nan')
    head = _train(config, task.head_type, len(gathered.labels), data, extractor)
    head = task.tuned(data, head, gathered.labels)
    tested = task.test(data, head, gathered.labels)
    judgement = task.judgement(data, head)
    report = task.report(gathered, data, head, tested, skipped, judgement)
    tensorboard_final.write_final(config.summaries_dir, gathered.labels,
                                  *task.confusion(data, head), head, config.final_tensor_name,
                                  config.how_many_training_steps)
    write_outputs(outputs.Trained(config, extractor, head, gathered.labels,
                                  data.paths['training'], report, judgement))
    logging.info('Done in %.1f s', time.monotonic() - started)
    return float('nan') if tested['test_accuracy'] is None else tested['test_accuracy']


def _cache(config: RetrainConfig, gathered: Gathered,
           extractor: FeatureExtractor) -> Tuple[Bottlenecks, List[Skipped]]:
    """Every image's bottleneck, from the cache or computed into it (on Beam if asked)."""
    if config.beam_runner:
        from retrain.cache import beam_fill
        beam_fill.fill_run_cache(config, gathered.examples, extractor,
                                 functools.partial(loading.load_extractor, config))
    return bottleneck_files.load_or_compute(config.image_dir, gathered.examples,
                                            config.bottleneck_dir, extractor,
                                            config.cache_batch_size, config.allow_truncated_images)


def _train(config: RetrainConfig, head_type: type, num_labels: int, data: Bottlenecks,
           extractor: FeatureExtractor) -> Head:
    """The new layer, trained on the bottlenecks (or on distorted images), then fine-tuned
    together with the module when asked."""
    tensorboard_final.clear_earlier_runs(config.summaries_dir)
    batches = (distortions.training_batches(data.paths['training'], data.labels['training'],
                                            extractor, config, config.random_seed,
                                            allow_truncated=config.allow_truncated_images)
               if config.distortions_enabled or config.fine_tune_steps else None)

    def store_intermediate(step: int, head: Head) -> None:
        path = frozen_graph.intermediate_graph_path(config.intermediate_output_graphs_dir, step)
        logging.info('Save intermediate result to : %s', path)
        frozen_graph.write_graph(path, frozen_graph.build_graph(extractor, head,
                                                                config.final_tensor_name))

    head = loop.train(data, num_labels, config, on_checkpoint=store_intermediate,
                      checkpoint_every=config.intermediate_store_frequency,
                      training_batches=batches if config.distortions_enabled else None,
                      head_type=head_type)
    if config.fine_tune_steps:
        head = fine_tuning.fine_tune(batches, head, extractor, data, config)
        interrupts.check()  # Before anything is written to the output paths.
    return head


def write_outputs(trained: outputs.Trained) -> None:
    """Every output of the run (retrain.export.outputs), all or nothing, then its log line."""
    written = [(output, path) for output, path, _ in outputs.wanted(trained.config)
               if output.writer]
    with staging.staged() as stage:  # All outputs are this run's, or all are as they were.
        for output, path in written:
            with stage.output(path) as temporary:
                output.module().write_output(temporary, trained)
    for output, path in written:
        logging.info('%s', output.module().wrote_line(path, trained))
