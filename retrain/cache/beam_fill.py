"""Filling the bottleneck cache with an Apache Beam pipeline (`--beam_runner`), for scale-out.

Caching bottlenecks is one independent job per image, so it fits any Beam runner: DirectRunner
on one machine, Dataflow, Flink or Spark on a cluster, all through this one code path. Workers
write exactly the files the in-process path writes (same names, same text, same decoding and
extractor), then the run reads the full cache and trains as usual. On a cluster, `image_dir` and
`bottleneck_dir` must be storage every worker sees (gs://, hdfs://, a shared mount) and the
workers need this package (Beam's `--extra_package=<wheel>`, or a custom container).
"""
import json
import os
import uuid
from typing import Callable, Iterator, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache import bottleneck_files
from retrain.common import fileio
from retrain.common.errors import ToolError, error_cause, error_summary
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.data.examples import Example
from retrain.features.extractors import FeatureExtractor

try:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError:  # The optional `beam` extra; fill_cache says how to install it.
    beam = None

# (image file, its cache file, cache files of older generations that count as cached)
Job = Tuple[str, ...]
COMPUTED = 'bottlenecks_computed'
UNREADABLE = 'images_unreadable'


def cache_jobs(image_dir: str, examples: Sequence[Example], bottleneck_dir: str,
               extractor: FeatureExtractor) -> List[Job]:
    """Every image of the run with the cache files the in-process path reads and writes."""
    return [(e.image(image_dir),) +
            tuple(bottleneck_files.cache_files(bottleneck_dir, e.location, extractor))
            for e in examples]


if beam is not None:
    class _ComputeBottlenecks(beam.DoFn):
        """Decodes a batch of images, runs the extractor once, writes one cache file per image.

        The extractor is loaded once per worker in `setup` (TF objects do not pickle; the loader
        does). Unreadable images are logged and left uncached: the in-process reader then skips
        them with the usual warning.
        """

        def __init__(self, load_extractor: Callable[[], FeatureExtractor]):
            super().__init__()
            self._load_extractor = load_extractor
            self._extractor = None
            self._computed = beam.metrics.Metrics.counter(__name__, COMPUTED)
            self._unreadable = beam.metrics.Metrics.counter(__name__, UNREADABLE)

        def setup(self):
            self._extractor = self._load_extractor()

        def process(self, batch: Sequence[Job]) -> Iterator[str]:
            images, caches = [], []
            for image, cache, *_ in batch:
                try:
                    images.append(image_io.load_image(image, self._extractor.image_size))
                    caches.append(cache)
                except ToolError:  # Named by the in-process reader, which skips it too.
                    self._unreadable.inc()
            if not images:
                return
            bottleneck_files.write_bottlenecks(caches, self._extractor(np.stack(images)).numpy())
            yield from caches
            self._computed.inc(len(caches))


def _is_missing(job: Job, size: int) -> bool:
    return all(bottleneck_files.read_bottleneck(cache, size) is None for cache in job[1:])


def _write_job_list(jobs: Sequence[Job], bottleneck_dir: str) -> str:
    """The jobs as JSON lines in `bottleneck_dir`, which every worker reads and writes anyway.

    Millions of paths do not fit in a pipeline graph (`beam.Create` embeds its values), but a
    text file read in parallel scales with the runner. JSON's escapes keep names that are not
    valid UTF-8 (surrogates) intact.
    """
    path = os.path.join(bottleneck_dir, f'.beam_jobs-{uuid.uuid4().hex[:12]}.jsonl')
    fileio.atomic_write(path, ''.join(json.dumps(job) + '\n' for job in jobs))
    return path


def _counter(result, name: str) -> int:
    query = result.metrics().query(beam.metrics.MetricsFilter().with_name(name))
    return sum(c.committed or 0 for c in query['counters'])


def fill_cache(jobs: Sequence[Job], bottleneck_dir: str, extractor: FeatureExtractor,
               load_extractor: Callable[[], FeatureExtractor], runner: str,
               pipeline_options: Sequence[str] = (),
               batch_size: int = RetrainConfig.cache_batch_size) -> int:
    """Computes the missing or damaged cache files of `jobs` on the Beam runner `runner`.

    `extractor` is the driver's copy (for the cache format); `load_extractor` must be picklable
    and load the same model on each worker (e.g. functools.partial of a module-level function).
    `pipeline_options` are Beam's own flags (`--project=...`, `--direct_num_workers=2`). Returns
    how many bottlenecks the workers wrote.
    """
    if beam is None:
        raise ToolError(f'--beam_runner {runner} needs Apache Beam: pip install "retrain[beam]" '
                        '(or pip install apache-beam)')
    size = extractor.bottleneck_size
    try:
        pipeline = beam.Pipeline(options=PipelineOptions(flags=list(pipeline_options),
                                                         runner=runner))
    except (ValueError, TypeError) as e:
        raise ToolError(f'cannot start a Beam pipeline with runner {runner!r}: '
                        f'{error_summary(e)}') from None
    logging.info('Caching bottlenecks of %d images in %s with Beam runner %s (%s)', len(jobs),
                 bottleneck_dir, runner, extractor.description)
    try:
        job_list = _write_job_list(jobs, bottleneck_dir)
    except tf.errors.OpError as e:
        raise ToolError(f'cannot write to bottleneck directory {bottleneck_dir}: '
                        f'{error_summary(e)}') from None
    try:
        _ = (pipeline
             | 'Jobs' >> beam.io.ReadFromText(job_list)
             | 'Parse' >> beam.Map(lambda line: tuple(json.loads(line)))
             | 'Spread' >> beam.Reshuffle()
             | 'Missing' >> beam.Filter(_is_missing, size)
             | 'Batch' >> beam.BatchElements(min_batch_size=1, max_batch_size=max(1, batch_size))
             | 'Compute' >> beam.ParDo(_ComputeBottlenecks(load_extractor)))
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as e:  # noqa: BLE001  Runners wrap worker errors their way.
        raise ToolError(f'the Beam pipeline on {runner} failed: {error_cause(e)}') from None
    finally:
        tf.io.gfile.remove(job_list)
    computed = _counter(result, COMPUTED)
    logging.info('Beam runner %s wrote %d bottleneck files (%d images unreadable)', runner,
                 computed, _counter(result, UNREADABLE))
    return computed


def fill_run_cache(config: RetrainConfig, examples: Sequence[Example],
                   extractor: FeatureExtractor,
                   load_extractor: Callable[[], FeatureExtractor]) -> int:
    """The cache of a whole retrain run, on `config.beam_runner`; pipeline.run's entry point.

    `load_extractor` is as for `fill_cache` (pipeline passes its own loader: this module never
    imports the pipeline, which imports it)."""
    jobs = cache_jobs(config.image_dir, examples, config.bottleneck_dir, extractor)
    return fill_cache(jobs, config.bottleneck_dir, extractor, load_extractor, config.beam_runner,
                      config.beam_pipeline_options, config.cache_batch_size)
