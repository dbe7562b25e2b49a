"""Filling the bottleneck cache with an Apache Beam pipeline (`--beam_runner`), for scale-out.

Caching bottlenecks is one independent job per image, so it fits any Beam runner: DirectRunner
on one machine, Dataflow, Flink, Spark or Dask on a cluster, all through this one code path. Workers
write exactly the files the in-process path writes (same names, same text, same decoding and
extractor), then the run reads the full cache and trains as usual. On a cluster, `image_dir` and
`bottleneck_dir` must be storage every worker sees (gs://, hdfs://, a shared mount) and the
workers need this package (Beam's `--extra_package=<wheel>`, or a custom container).
"""
import concurrent.futures
import contextlib
import io
import json
import logging as python_logging
import math
import os
import socket
import uuid
from typing import Callable, List, NamedTuple, Sequence, Tuple

import tensorflow as tf
from absl import logging

from retrain.cache import bottleneck_files
from retrain.common import fileio
from retrain.common.errors import ConfigError, ToolError, error_cause, error_summary
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.data.examples import Example
from retrain.features.extractors import FeatureExtractor

try:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.utils.shared import Shared
except ImportError:  # The optional `beam` extra; fill_cache says how to install it.
    beam = None



class Job(NamedTuple):
    """One image to cache, as the in-process path caches it (bottleneck_files.load_or_compute)."""
    image: str
    cache: str  # Its own cache file: values decoded at full scale.
    scaled: str  # Its file for values of a JPEG decoded scaled down; '' to decode at full scale.
    reads: Sequence[str]  # Every file that counts as its cached values (cache_files).

    def written(self, scaled: bool) -> str:
        """The file its values go to, `scaled` saying whether its image was decoded scaled."""
        return self.scaled if scaled and self.scaled else self.cache

# (job list file, byte offset, byte length): a share of the work, read by whichever worker gets it.
Share = Tuple[str, int, int]
DASK_RUNNER = 'apache_beam.runners.dask.dask_runner.DaskRunner'
# Short runner names Beam itself does not know.
_RUNNER_NAMES = {'DaskRunner': DASK_RUNNER}
# Work is cut into at least this many shares when there are enough images, so that every worker
# of a cluster gets some, and no share is larger than one model batch.
_MIN_SHARES = 64
_MISSING_NAMED = 3  # Missing cache files named in the error; the rest are counted.


def cache_jobs(image_dir: str, examples: Sequence[Example], bottleneck_dir: str,
               extractor: FeatureExtractor) -> List[Job]:
    """Every image of the run with the cache files the in-process path reads and writes."""
    return [Job(e.image(image_dir),
                bottleneck_files.bottleneck_path(bottleneck_dir, e.location,
                                                 extractor.cache_suffix),
                bottleneck_files.scaled_file(bottleneck_dir, e.location, extractor),
                tuple(bottleneck_files.cache_files(bottleneck_dir, e.location, extractor)))
            for e in examples]


if beam is not None:
    class _ComputeBottlenecks(beam.DoFn):
        """Computes bottlenecks in batches as the in-process path does; one cache file each.

        The pipeline ends here and this DoFn outputs nothing: its work is the files, which the
        driver checks afterwards (no runner's word, metrics or outputs are trusted: the Dask
        runner has no metrics and drops what `finish_bundle` outputs). The extractor (frozen
        on first use) is held in a `Shared` handle, so a worker process loads it once, even
        where a runner calls `setup` for every bundle (the Dask runner does, per partition); TF
        objects do not pickle, the loader does. Unreadable images are left uncached: the driver
        names and counts them.
        """

        def __init__(self, load_extractor: Callable[[], FeatureExtractor], batch_size: int):
            super().__init__()
            self._load_extractor = load_extractor
            self._batch_size = batch_size
            self._shared = Shared()
            self._extractor = None
            self._batch: List[Job] = []

        def setup(self):
            self._extractor = self._shared.acquire(self._load_extractor)

        def start_bundle(self):
            self._batch = []

        def process(self, job: Job):
            self._batch.append(job)
            if len(self._batch) >= self._batch_size:
                self._write_batch()

        def finish_bundle(self):
            self._write_batch()

        def _write_batch(self) -> None:
            """The in-process path's batches (tf.data decoding, the frozen model) for the jobs
            so far; images that do not decode are dropped there."""
            batch, self._batch = self._batch, []
            for indices, features, scaled in bottleneck_files.compute_bottlenecks(
                    self._extractor, [job.image for job in batch], self._batch_size,
                    scaling=[bool(job.scaled) for job in batch]):
                bottleneck_files.write_bottlenecks(
                    [batch[i].written(smaller) for i, smaller in zip(indices, scaled)], features)
                logging.info('Wrote %d bottleneck files on %s, process %d', len(indices),
                             socket.gethostname(), os.getpid())


def _is_missing(job: Job, size: int) -> bool:
    return all(bottleneck_files.read_bottleneck(cache, size) is None for cache in job.reads)


def _missing(jobs: Sequence[Job], size: int) -> List[Job]:
    """The jobs without a valid cache file, read on threads as the in-process path reads."""
    with concurrent.futures.ThreadPoolExecutor(bottleneck_files.READ_THREADS) as pool:
        return [job for job, missing in zip(jobs, pool.map(lambda j: _is_missing(j, size), jobs))
                if missing]


def _unreadable(jobs: Sequence[Job]) -> List[bool]:
    with concurrent.futures.ThreadPoolExecutor(bottleneck_files.READ_THREADS) as pool:
        return [bool(reason) for reason in pool.map(
            lambda job: image_io.describe_decode_error(job.image), jobs)]


def _job_list(jobs: Sequence[Job], bottleneck_dir: str,
              batch_size: int) -> Tuple[str, str, List[Share]]:
    """(path, text) of the jobs as JSON lines in `bottleneck_dir`, which every worker reads and
    writes anyway, and that text's shares of whole lines.

    Millions of paths do not fit in a pipeline graph (`beam.Create` embeds its values), but a
    few thousand byte ranges of one file do, and every runner can create them (the Dask runner
    cannot read files with Beam's read transforms). JSON's escapes keep names that are not
    valid UTF-8 (surrogates) intact, and keep every line ASCII: one character, one byte.
    """
    path = os.path.join(bottleneck_dir, f'.beam_jobs-{uuid.uuid4().hex[:12]}.jsonl')
    lines = [json.dumps(job) + '\n' for job in jobs]
    share = max(1, min(batch_size, math.ceil(len(lines) / _MIN_SHARES)))
    shares, offset = [], 0
    for start in range(0, len(lines), share):
        length = sum(len(line) for line in lines[start:start + share])
        shares.append((path, offset, length))
        offset += length
    return path, ''.join(lines), shares


def _read_share(share: Share) -> List[Job]:
    path, offset, length = share
    with tf.io.gfile.GFile(path, 'rb') as f:
        f.seek(offset)
        text = f.read(length).decode('ascii')
    return [Job(*json.loads(line)) for line in text.splitlines()]


def _pipeline(runner: str, flags: Sequence[str], shares: int) -> 'beam.Pipeline':
    """A pipeline on `runner` with Beam's `flags`; on the Dask runner one dask.Bag partition per
    share unless the flags partition (by default it puts 128 shares in one partition)."""
    full_name, flags = _RUNNER_NAMES.get(runner, runner), list(flags)
    if full_name == DASK_RUNNER:
        try:
            # The runner's module defines the --dask_* options: unregistered, Beam's parse
            # "discarded" them with a warning (then used them), and a bad value printed its
            # whole usage later. Without Dask, Beam's own error would not say what to install.
            import apache_beam.runners.dask.dask_runner  # noqa: F401
            import dask.distributed  # noqa: F401
        except ImportError:
            raise ToolError(f'--beam_runner {runner} needs Dask: pip install "retrain[dask]" '
                            '(or pip install "apache-beam[dask]")') from None
        if not any(f.startswith(('--dask_npartitions', '--dask_partition_size')) for f in flags):
            flags.append(f'--dask_npartitions={max(1, shares)}')
    try:
        return beam.Pipeline(options=_parsed(flags, full_name))
    except (ValueError, TypeError, ImportError) as e:
        raise ToolError(f'cannot start a Beam pipeline with runner {runner!r}: '
                        f'{error_summary(e)}') from None


def _parsed(flags: Sequence[str], runner: str) -> 'PipelineOptions':
    """Beam's options of `flags`, all read now; a ConfigError for one its argparse refuses.

    Beam's argparse answers a bad value (`--direct_num_workers=abc`) with its whole usage, some
    150 lines, and `--help` with a help text, each by exiting the process, the first only when
    the pipeline runs: the run ended there, after `--help` with code 0 and nothing done."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(printed):
            options = PipelineOptions(flags=flags, runner=runner)
            options.get_all_options()
    except SystemExit:
        last = (printed.getvalue().strip().splitlines() or [''])[-1]
        reason = (last.split(': error: ', 1)[1] if ': error: ' in last
                  else "they ask for Beam's help, which only prints it")
        raise ConfigError(f'bad --beam_pipeline_options: {reason}') from None
    return options


def _check_complete(todo: Sequence[Job], size: int, runner: str) -> Tuple[int, int]:
    """(files written, images unreadable) of a run that was to cache `todo`; a ToolError naming
    the files a readable image still lacks, whatever state the runner reported."""
    still = _missing(todo, size)
    unreadable = _unreadable(still)
    lost = [job.cache for job, bad in zip(still, unreadable) if not bad]
    if lost:
        named = ', '.join(lost[:_MISSING_NAMED]) + (', ...' if len(lost) > _MISSING_NAMED else '')
        raise ToolError(f'the Beam pipeline on {runner} finished, but {len(lost)} of the '
                        f'{len(todo)} bottleneck files it had to write are missing: {named}')
    return len(todo) - len(still), len(still)


def _our_errors_unlogged(record: python_logging.LogRecord) -> bool:
    """False for Beam's record of a ToolError a step raised (a full disk, a model the workers
    cannot load): Beam logs each with its traceback before the runner raises it, and the driver
    says it in one line. A filter of Beam's logger in this process: remote workers log theirs."""
    return not (record.exc_info and isinstance(record.exc_info[1], ToolError))


def _warn_without_workers(result: 'beam.runners.runner.PipelineResult', runner: str) -> None:
    """A warning where the Dask cluster has no worker: its tasks wait, silently, until one joins
    (an autoscaling cluster starts with none), and so did the run, with no line at all."""
    client = getattr(result, 'client', None)
    if client is not None and not client.scheduler_info().get('workers'):
        logging.warning('The Dask cluster at %s has no workers: the %s pipeline waits until one '
                        'joins (Ctrl-C stops the run)', client.scheduler.address, runner)


def fill_cache(jobs: Sequence[Job], bottleneck_dir: str, extractor: FeatureExtractor,
               load_extractor: Callable[[], FeatureExtractor], runner: str,
               pipeline_options: Sequence[str] = (),
               batch_size: int = RetrainConfig.cache_batch_size) -> int:
    """Computes the missing or damaged cache files of `jobs` on the Beam runner `runner`.

    `extractor` is the driver's copy (for the cache format); `load_extractor` must be picklable
    and load the same model on each worker (e.g. functools.partial of a module-level function).
    `pipeline_options` are Beam's own flags (`--project=...`, `--direct_num_workers=2`). The
    pipeline is one chain (shares of the job list -> jobs -> compute), the shape every runner
    runs whole. Returns how many bottlenecks the workers wrote, counted on disk afterwards.
    """
    if beam is None:
        raise ToolError(f'--beam_runner {runner} needs Apache Beam: pip install "retrain[beam]" '
                        '(or pip install apache-beam)')
    size = extractor.bottleneck_size
    # Where its own file is there (damaged), an image gets classic values, as in-process.
    todo = [job._replace(scaled='') if job.scaled and tf.io.gfile.exists(job.cache) else job
            for job in _missing(jobs, size)]
    batch_size = max(1, batch_size)
    job_list, text, shares = _job_list(todo, bottleneck_dir, batch_size)
    pipeline = _pipeline(runner, pipeline_options, len(shares))
    logging.info('Caching bottlenecks of %d of %d images in %s with Beam runner %s (%s)',
                 len(todo), len(jobs), bottleneck_dir, runner, extractor.description)
    if not todo:
        return 0
    try:
        fileio.atomic_write(job_list, text)
    except tf.errors.OpError as e:
        raise ToolError(f'cannot write to bottleneck directory {bottleneck_dir}: '
                        f'{error_summary(e)}') from None
    beam_errors = python_logging.getLogger('apache_beam.runners.common')
    beam_errors.addFilter(_our_errors_unlogged)
    try:
        _ = (pipeline
             | 'Shares' >> beam.Create(shares)
             | 'Jobs' >> beam.FlatMap(_read_share)
             | 'Spread' >> beam.Reshuffle()
             | 'Compute' >> beam.ParDo(_ComputeBottlenecks(load_extractor, batch_size)))
        result = pipeline.run()
        try:
            _warn_without_workers(result, runner)
            result.wait_until_finish()
        finally:  # The Dask runner's client would try to reconnect after the cluster stops.
            if getattr(result, 'client', None) is not None:
                result.client.close()
    except Exception as e:  # noqa: BLE001  Runners wrap worker errors their way.
        raise ToolError(f'the Beam pipeline on {runner} failed: {error_cause(e)}') from None
    finally:
        beam_errors.removeFilter(_our_errors_unlogged)
        tf.io.gfile.remove(job_list)
    computed, unreadable = _check_complete(todo, size, runner)
    logging.info('Beam runner %s wrote %d bottleneck files (%d images unreadable)', runner,
                 computed, unreadable)
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
