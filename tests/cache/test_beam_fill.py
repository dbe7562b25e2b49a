"""`--beam_runner`: the bottleneck cache computed by an Apache Beam pipeline (DirectRunner here).

The cache a Beam pipeline writes must be the in-process cache: same file names, same text format,
values within 1e-3 (as the README says), so a run can switch between them (or to a cluster
runner) and reuse the files. Tests that need Beam skip when the optional `beam` extra is not
installed; one test checks, always, the clear error a user without it gets.
"""
import dataclasses
import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from bench.dask_cluster import bottlenecks_written, local_cluster
from retrain.cache import bottleneck_files
from retrain.data import image_lists
from retrain.features.hub_module import load_hub_module
from retrain.tasks.single_label import examples_of

from conftest import REPO_ROOT, make_image_folder, retrain_args, run_module, start_module

HAVE_BEAM = importlib.util.find_spec('apache_beam') is not None
needs_beam = pytest.mark.skipif(not HAVE_BEAM, reason='apache-beam is not installed (extra "beam")')
HAVE_DASK = HAVE_BEAM and all(importlib.util.find_spec(m) for m in ('dask', 'distributed'))
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason='dask is not installed (extra "dask")')


def _cache_files(root: str):
    """Relative path -> text of every cache file in the class folders below `root`.

    Files at the top (the in-process path's binary index of the cache) are not cache files.
    """
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if folder == root:
                continue
            with open(path, encoding='utf-8') as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def _in_process_and_beam(image_dir, module, tmp_path, batch_size=64, scaled_jpegs=False):
    """Fills one cache in-process and one with DirectRunner; returns both folders and the count."""
    from retrain.cache import beam_fill
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    extractor = dataclasses.replace(load_hub_module(module), scaled_jpegs=scaled_jpegs)
    local_dir, beam_dir = str(tmp_path / 'in_process'), str(tmp_path / 'beam')
    bottleneck_files.load_or_compute(image_dir, examples_of(classes), local_dir, extractor,
                                     batch_size)
    jobs = beam_fill.cache_jobs(image_dir, examples_of(classes), beam_dir, extractor)
    computed = beam_fill.fill_cache(jobs, beam_dir, extractor,
                                     functools.partial(load_hub_module, module), 'DirectRunner',
                                     batch_size=batch_size)
    return local_dir, beam_dir, computed, extractor


def _assert_same_cache(local_dir, beam_dir, size):
    local, beam = _cache_files(local_dir), _cache_files(beam_dir)
    assert sorted(beam) == sorted(local)
    for name, text in beam.items():
        values = bottleneck_files.parse_values(text, size)
        assert values is not None, name
        assert text == bottleneck_files.format_values(values), f'{name} is not in the cache format'
        # Not byte-identical: the two paths batch images differently, which moves last digits.
        np.testing.assert_allclose(values, bottleneck_files.parse_values(local[name], size),
                                   atol=1e-3, err_msg=name)


@needs_beam
def test_direct_runner_writes_the_in_process_cache(tiny_module, tmp_path):
    images = make_image_folder(str(tmp_path / 'images'), per_class=12)
    with open(os.path.join(images, 'red', 'broken.jpg'), 'wb') as f:
        f.write(b'not an image at all')
    local_dir, beam_dir, computed, extractor = _in_process_and_beam(images, tiny_module, tmp_path,
                                                                   batch_size=5)
    assert computed == 36  # 3 classes x 12 good images; the broken one is skipped, not cached.
    _assert_same_cache(local_dir, beam_dir, extractor.bottleneck_size)
    assert os.path.isfile(os.path.join(beam_dir, 'red', 'red_000.jpg' + extractor.cache_suffix +
                                       '.txt'))


@needs_beam
def test_large_jpegs_are_cached_scaled_down_as_in_process(tiny_module, tmp_path):
    """The driver says which images may be decoded scaled down (the workers' model is loaded
    without a word on it); 160x192 is over four times the tiny module's 32x32."""
    images = make_image_folder(str(tmp_path / 'images'), per_class=4, shape=(160, 192))
    local_dir, beam_dir, computed, extractor = _in_process_and_beam(images, tiny_module, tmp_path,
                                                                   scaled_jpegs=True)
    assert computed == 12
    _assert_same_cache(local_dir, beam_dir, extractor.bottleneck_size)
    names = _cache_files(beam_dir)
    assert len(names) == 12 and all(n.endswith('_scaled_jpegs.txt') for n in names)
    # A damaged classic file gets classic values again under its name, as in-process.
    from retrain.cache import beam_fill
    examples = examples_of(image_lists.create_image_lists(images, 10, 10))
    job = beam_fill.cache_jobs(images, examples, beam_dir, extractor)[0]
    os.remove(job.scaled)
    with open(job.cache, 'w', encoding='utf-8') as f:
        f.write('damaged')
    assert beam_fill.fill_cache([job], beam_dir, extractor,
                                functools.partial(load_hub_module, tiny_module),
                                'DirectRunner') == 1
    assert bottleneck_files.read_bottleneck(job.cache, extractor.bottleneck_size) is not None
    assert not os.path.exists(job.scaled)


@needs_beam
def test_only_missing_or_damaged_files_are_computed(tiny_module, image_dir, tmp_path):
    from retrain.cache import beam_fill
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    extractor = load_hub_module(tiny_module)
    cache_dir = str(tmp_path / 'cache')
    jobs = beam_fill.cache_jobs(image_dir, examples_of(classes), cache_dir, extractor)
    fill = functools.partial(beam_fill.fill_cache, jobs, cache_dir, extractor,
                             functools.partial(load_hub_module, tiny_module), 'DirectRunner')
    assert fill() == 90
    damaged, kept = jobs[0][1], jobs[1][1]
    with open(damaged, 'w', encoding='utf-8') as f:
        f.write('1.0,oops')
    with open(kept, 'w', encoding='utf-8') as f:
        f.write(','.join(['0.5'] * extractor.bottleneck_size))
    os.remove(jobs[2][1])
    assert fill() == 2
    assert bottleneck_files.read_bottleneck(damaged, extractor.bottleneck_size) is not None
    with open(kept, encoding='utf-8') as f:
        assert f.read() == ','.join(['0.5'] * extractor.bottleneck_size)
    assert os.path.isfile(jobs[2][1])
    assert not [n for n in os.listdir(cache_dir) if n.startswith('.')]  # Job list removed.


@needs_beam
def test_older_generation_cache_files_count_as_cached(tiny_module, image_dir, tmp_path):
    """A TF 1.0-1.4 style `photo.jpg.txt` is reused in-process, so Beam must not recompute it."""
    from retrain.cache import beam_fill
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    extractor = dataclasses.replace(load_hub_module(tiny_module), legacy_cache_suffixes=('',))
    cache_dir = str(tmp_path / 'cache')
    jobs = beam_fill.cache_jobs(image_dir, examples_of(classes), cache_dir, extractor)
    image, current, older = jobs[0].image, jobs[0].cache, jobs[0].reads[1]
    assert older == current.replace(extractor.cache_suffix + '.txt', '.txt')
    os.makedirs(os.path.dirname(older))
    with open(older, 'w', encoding='utf-8') as f:
        f.write(','.join(['0.25'] * extractor.bottleneck_size))
    computed = beam_fill.fill_cache(jobs, cache_dir, extractor,
                                     functools.partial(load_hub_module, tiny_module),
                                     'DirectRunner')
    assert computed == 89 and os.path.isfile(jobs[1][1])
    assert not os.path.exists(current), f'{image} was recomputed despite its older cache file'


@needs_beam
def test_an_error_of_the_workers_is_logged_without_a_traceback(tiny_module, image_dir, tmp_path,
                                                                caplog):
    """Beam logged a ToolError a step raised (here: workers that cannot load the model; a full
    disk alike) with its traceback, some 20 lines, before the driver's one-line error."""
    from retrain.cache import beam_fill
    from retrain.common.errors import ToolError
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    cache_dir = str(tmp_path / 'cache')
    extractor = load_hub_module(tiny_module)
    jobs = beam_fill.cache_jobs(image_dir, examples_of(classes), cache_dir, extractor)[:2]
    missing = str(tmp_path / 'not_on_the_workers')
    with pytest.raises(ToolError, match=f'^the Beam pipeline on DirectRunner failed: .*{missing}'):
        beam_fill.fill_cache(jobs, cache_dir, extractor,
                             functools.partial(load_hub_module, missing), 'DirectRunner')
    assert not [r for r in caplog.records if r.exc_info], 'a traceback was logged'


@needs_beam
def test_cli_trains_from_the_beam_cache(tiny_module, image_dir, tmp_path):
    out = tmp_path / 'out'
    result = run_module(
        'retrain', '--image_dir', image_dir, '--tfhub_module', tiny_module,
        '--beam_runner', 'DirectRunner', '--beam_pipeline_options=--direct_num_workers=1',
        '--how_many_training_steps', '20', '--bottleneck_dir', str(out / 'bn'),
        '--output_graph', str(out / 'g.pb'), '--output_labels', str(out / 'l.txt'),
        '--summaries_dir', str(out / 'sum'))
    assert result.returncode == 0, result.stderr
    assert 'Beam runner DirectRunner wrote 90 bottleneck files' in result.stderr
    assert '90 bottlenecks cached' in result.stderr and '0 to compute' in result.stderr
    assert os.path.getsize(out / 'g.pb') > 0
    assert (out / 'l.txt').read_text(encoding='utf-8') == 'blue\ngreen\nred\n'


@needs_beam
def test_unknown_runner_is_a_one_line_error(tiny_module, image_dir, tmp_path):
    out = tmp_path / 'out'
    result = run_module('retrain', '--image_dir', image_dir, '--tfhub_module', tiny_module,
                        '--beam_runner', 'NoSuchRunner', '--bottleneck_dir', str(out / 'bn'),
                        '--output_graph', str(out / 'g.pb'), '--output_labels', str(out / 'l.txt'),
                        '--summaries_dir', str(out / 'sum'), '--how_many_training_steps', '5')
    assert result.returncode == 1
    assert ("retrain: error: cannot start a Beam pipeline with runner 'NoSuchRunner'"
            in result.stderr)
    assert 'Traceback' not in result.stderr


def test_without_beam_the_flag_says_how_to_install(tiny_module, image_dir, tmp_path):
    """Run where `import apache_beam` fails, whether or not Beam is installed here: a package of
    that name that raises ImportError comes first on the path."""
    hidden = tmp_path / 'no_beam' / 'apache_beam'
    hidden.mkdir(parents=True)
    (hidden / '__init__.py').write_text("raise ImportError('No module named apache_beam')\n",
                                        encoding='utf-8')
    out = tmp_path / 'out'
    result = run_module('retrain', '--image_dir', image_dir, '--tfhub_module', tiny_module,
                        '--beam_runner', 'DirectRunner', '--bottleneck_dir', str(out / 'bn'),
                        '--output_graph', str(out / 'g.pb'), '--output_labels', str(out / 'l.txt'),
                        '--summaries_dir', str(out / 'sum'), '--how_many_training_steps', '5',
                        env_extra={'PYTHONPATH': os.pathsep.join([str(hidden.parent), REPO_ROOT])})
    assert result.returncode == 1
    assert ('retrain: error: --beam_runner DirectRunner needs Apache Beam: '
            'pip install "retrain[beam]"') in result.stderr
    assert 'Traceback' not in result.stderr


@needs_beam
def test_flower_photos_cache_matches_in_process(shared_dir, tmp_path):
    """The issue's acceptance check on real photos and a real MobileNetV2, values within 1e-3.

    Eight photos per class keep it fast; bench/bench_beam_cache.py runs all 500.
    """
    images = os.path.join(shared_dir, 'data', 'flower_photos_small')
    module = os.path.join(shared_dir, 'models', 'mobilenet_v2_100_224_feature_vector')
    subset = tmp_path / 'flowers'
    for name in sorted(n for n in os.listdir(images) if os.path.isdir(os.path.join(images, n))):
        os.makedirs(subset / name)
        for photo in sorted(os.listdir(os.path.join(images, name)))[:8]:
            shutil.copy(os.path.join(images, name, photo), subset / name / photo)
    local_dir, beam_dir, computed, extractor = _in_process_and_beam(str(subset), module, tmp_path)
    assert computed == 40
    _assert_same_cache(local_dir, beam_dir, extractor.bottleneck_size)


# A Beam runner that runs nothing and reports DONE: what the Dask runner does to a pipeline
# branch it drops. Written where a `retrain` subprocess imports it by its dotted name.
_REPORTS_DONE_RUNNER = '''
from apache_beam.runners.runner import PipelineResult, PipelineRunner, PipelineState


class DoneResult(PipelineResult):
    def wait_until_finish(self, duration=None):
        return self.state


class ReportsDone(PipelineRunner):
    def run_pipeline(self, pipeline, options):
        return DoneResult(PipelineState.DONE)
'''


@needs_beam
def test_a_runner_reporting_done_with_files_missing_is_an_error(tiny_module, tmp_path):
    images = make_image_folder(str(tmp_path / 'images'), per_class=4)
    with open(os.path.join(images, 'red', 'broken.jpg'), 'wb') as f:
        f.write(b'not an image at all')
    (tmp_path / 'runners').mkdir()
    (tmp_path / 'runners' / 'done_runner.py').write_text(_REPORTS_DONE_RUNNER, encoding='utf-8')
    out = tmp_path / 'out'
    result = run_module('retrain', *retrain_args(images, tiny_module, str(out), 5),
                        '--beam_runner', 'done_runner.ReportsDone',
                        env_extra={'PYTHONPATH': os.pathsep.join([str(tmp_path / 'runners'),
                                                                  REPO_ROOT])})
    assert result.returncode == 1, result.stderr
    error = [line for line in result.stderr.splitlines() if 'retrain: error:' in line]
    prefix = ('retrain: error: the Beam pipeline on done_runner.ReportsDone finished, but 12 of '
              'the 13 bottleneck files it had to write are missing: ')
    assert len(error) == 1 and error[0].startswith(prefix), result.stderr
    named = error[0][len(prefix):].split(', ')  # Three files, then the rest as '...'.
    assert named[3:] == ['...']
    for name in named[:3]:  # Cache files of good images (not of broken.jpg), not written.
        folder, file = os.path.split(os.path.relpath(name, out / 'bn'))
        assert re.fullmatch(folder + r'_00[0-3]\.jpg_.*\.txt', file) and not os.path.exists(name)
    assert 'broken.jpg' not in error[0] and 'Traceback' not in result.stderr


@needs_dask
def test_dask_runner_short_name_and_partitions():
    """One dask.Bag partition per share unless the user partitions (the runner would put 128
    shares in one partition, so one worker would do all the work)."""
    from retrain.cache import beam_fill
    pipeline = beam_fill._pipeline('DaskRunner', [], 7)
    assert type(pipeline.runner).__module__ + '.DaskRunner' == beam_fill.DASK_RUNNER
    assert pipeline.options.get_all_options()['npartitions'] == 7
    options = beam_fill._pipeline('DaskRunner', ['--dask_partition_size=3'], 7).options
    assert options.get_all_options()['partition_size'] == 3
    assert options.get_all_options()['npartitions'] is None


@needs_beam
@pytest.mark.parametrize('flag, reason', [
    ('--direct_num_workers=abc', "argument --direct_num_workers: invalid int value: 'abc'"),
    ('--direct_num_workers', 'argument --direct_num_workers: expected one argument'),
    ('--help', "they ask for Beam's help, which only prints it")])
def test_options_beam_refuses_are_a_usage_error_in_one_line(flag, reason, capfd):
    """Beam's argparse printed its 150-line usage and exited the process (after --help, with
    code 0 and nothing cached)."""
    from retrain.cache import beam_fill
    from retrain.common.errors import ConfigError
    with pytest.raises(ConfigError) as error:
        beam_fill._pipeline('DirectRunner', [flag], 1)
    assert str(error.value) == f'bad --beam_pipeline_options: {reason}'
    assert 'usage:' not in ''.join(capfd.readouterr())


@needs_dask
def test_a_bad_dask_option_is_a_usage_error_in_one_line(tiny_module, image_dir, tmp_path):
    """The --dask_* options were unknown to Beam's parse until the runner ran: it warned that it
    discarded them, then printed its 150-line usage for a bad value (in a fresh process only)."""
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5),
                        '--beam_runner', 'DaskRunner',
                        '--beam_pipeline_options=--dask_npartitions=abc')
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "retrain: error: bad --beam_pipeline_options: "
        "argument --dask_npartitions: invalid int value: 'abc'")
    assert 'usage:' not in result.stderr and 'Discarding' not in result.stderr


@needs_beam
def test_dask_runner_without_dask_says_how_to_install(monkeypatch):
    from retrain.cache import beam_fill
    from retrain.common.errors import ToolError
    monkeypatch.setitem(sys.modules, 'dask', None)  # `import dask...` raises ImportError.
    with pytest.raises(ToolError, match=r'^--beam_runner DaskRunner needs Dask: '
                                        r'pip install "retrain\[dask\]"'):
        beam_fill._pipeline('DaskRunner', [], 1)


@pytest.fixture(scope='module')
def dask_cluster(tmp_path_factory):
    """A Dask scheduler and two one-thread workers on loopback: (address, worker log files)."""
    with local_cluster(str(tmp_path_factory.mktemp('dask'))) as cluster:
        yield cluster


@pytest.fixture(scope='module')
def dask_run(dask_cluster, tiny_module, tmp_path_factory):
    """retrain on the Dask cluster, with 30 good images and a broken one: (finished process,
    its output folder, the image folder)."""
    root = tmp_path_factory.mktemp('dask_run')
    images = make_image_folder(str(root / 'images'), per_class=10)
    with open(os.path.join(images, 'red', 'broken.jpg'), 'wb') as f:
        f.write(b'not an image at all')
    out = root / 'out'
    result = run_module('retrain', *retrain_args(images, tiny_module, str(out), 5),
                        '--beam_runner', 'DaskRunner',
                        f'--beam_pipeline_options=--dask_client_address={dask_cluster[0]}')
    return result, out, images


@needs_dask
def test_dask_cluster_fills_the_in_process_cache(dask_run, tiny_module, tmp_path):
    result, out, images = dask_run
    assert result.returncode == 0, result.stderr
    assert 'Beam runner DaskRunner wrote 30 bottleneck files (1 images unreadable)' in result.stderr
    # The broken image is left to the in-process reader, which names and skips it as usual.
    assert '30 bottlenecks cached' in result.stderr and '1 to compute' in result.stderr
    assert 'Skipped 1 unreadable image(s) of 31' in result.stderr
    extractor = load_hub_module(tiny_module)
    local_dir = str(tmp_path / 'in_process')
    classes = image_lists.create_image_lists(images, 10, 10)
    bottleneck_files.load_or_compute(images, examples_of(classes), local_dir, extractor)
    _assert_same_cache(local_dir, str(out / 'bn'), extractor.bottleneck_size)


@needs_dask
def test_both_dask_workers_compute_and_load_the_model_once(dask_run, dask_cluster):
    assert dask_run[0].returncode == 0, dask_run[0].stderr
    for log in dask_cluster[1]:
        with open(log, encoding='utf-8', errors='replace') as f:
            text = f.read()
        assert text.count('Loading module') == 1, text
    written = [bottlenecks_written(log) for log in dask_cluster[1]]
    assert sum(written) == 30 and min(written) > 0, written


@needs_dask
def test_a_dask_cluster_without_workers_is_named_while_the_run_waits(tiny_module, image_dir,
                                                                       tmp_path):
    """Its tasks wait until a worker joins: the run waited too, without a line."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    scheduler = subprocess.Popen(
        [sys.executable, '-m', 'dask', 'scheduler', '--host', '127.0.0.1', '--port', str(port),
         '--no-dashboard'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, 'the scheduler did not start'
                time.sleep(0.2)
        child = start_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5),
                             '--beam_runner', 'DaskRunner',
                             f'--beam_pipeline_options=--dask_client_address=tcp://127.0.0.1:{port}',
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(90, child.kill)  # The old code waited without a word.
        watchdog.start()
        try:
            lines = []
            for line in child.stderr:
                lines.append(line)
                if 'has no workers' in line:
                    break
            child.send_signal(signal.SIGINT)
            rest = child.communicate(timeout=60)[1]
        finally:
            watchdog.cancel()
        assert lines and lines[-1].rstrip().endswith(
            f'The Dask cluster at tcp://127.0.0.1:{port} has no workers: the DaskRunner pipeline '
            'waits until one joins (Ctrl-C stops the run)'), ''.join(lines)
        assert child.returncode == 130, rest
        assert 'Traceback' not in rest
        assert not [n for n in os.listdir(tmp_path / 'bn') if n.startswith('.beam_jobs')]
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
