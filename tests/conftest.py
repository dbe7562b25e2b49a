"""Shared fixtures: a tiny TF2 feature-vector module, tiny image folders, CLI runners.

Everything here is real TensorFlow and real files, built in seconds, so tests need neither the
network nor ../shared. Tests that use ../shared ask for the `shared_dir` fixture, which skips
cleanly when it is absent (a user's fresh clone).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from typing import Dict, Sequence, Tuple

import numpy as np
import pytest

from retrain.common.logs import readable
from retrain.common.quiet_tensorflow import import_tensorflow


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ start-up notices (CUDA probing, oneDNN) are not the suite's output. The
    quiet import sets TF_CPP_MIN_LOG_LEVEL; it is set back as the user had it (or unset), or every
    CLI the tests start would inherit the import's level, and the tests that check the tools
    print no such notices would check that level only, not the user's."""
    level = os.environ.get('TF_CPP_MIN_LOG_LEVEL')
    import_tensorflow()
    if level is None:
        os.environ.pop('TF_CPP_MIN_LOG_LEVEL', None)  # Not set where TensorFlow was loaded.
    else:
        os.environ['TF_CPP_MIN_LOG_LEVEL'] = level


_import_tensorflow_quietly()
import tensorflow as tf  # noqa: E402  After the quiet import, which must come first.

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DIR = os.path.join(os.path.dirname(REPO_ROOT), 'shared')
TINY_SIZE = 32
# Mean colours of the synthetic classes: far apart, so a linear layer separates them easily.
CLASS_COLOURS: Dict[str, Sequence[int]] = {
    'red': (200, 40, 40), 'green': (40, 190, 60), 'blue': (50, 60, 210)}


class TinyFeatureVector(tf.Module):
    """A few-layer conv net with the TF Hub image feature-vector interface."""

    def __init__(self, size=TINY_SIZE):
        super().__init__()
        rng = np.random.default_rng(0)
        self.kernel = tf.Variable(rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32))
        self.dense = tf.Variable(rng.normal(0, 0.5, (8, 8)).astype(np.float32))
        self.__call__ = tf.function(
            self._features, input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])

    def _features(self, images):
        conv = tf.nn.relu(tf.nn.conv2d(images, self.kernel, 2, 'SAME'))
        pooled = tf.reduce_mean(conv, axis=[1, 2])
        colour = tf.reduce_mean(images, axis=[1, 2])
        return tf.concat([tf.nn.relu(tf.matmul(pooled, self.dense)), pooled, colour], axis=1)


def save_tiny_module(path: str, size=TINY_SIZE) -> str:
    tf.saved_model.save(TinyFeatureVector(size), path)
    return path


@pytest.fixture(scope='session')
def tiny_module(tmp_path_factory) -> str:
    """Path of a saved tiny module: float [N, 32, 32, 3] in [0, 1] -> [N, 19]."""
    return save_tiny_module(str(tmp_path_factory.mktemp('modules') / 'tiny_fv'))


def write_image(path: str, colour: Sequence[int], rng: np.random.Generator,
                shape=(40, 48), fmt: str = 'jpeg') -> None:
    """A noisy single-colour image; large ones repeat coarse noise blocks (cheap to generate)."""
    block = max(1, min(shape) // 48)
    coarse = rng.normal(colour, 25, (-(-shape[0] // block), -(-shape[1] // block), 3))
    coarse = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:shape[0], :shape[1]]
    pixels = np.clip(coarse, 0, 255).astype(np.uint8)
    encoded = tf.io.encode_png(pixels) if fmt == 'png' else tf.io.encode_jpeg(pixels, quality=90)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(encoded.numpy())


def make_image_folder(root: str, per_class: int = 30, seed: int = 0,
                      colours: Dict[str, Sequence[int]] = None, shape=(40, 48)) -> str:
    """Class folders of small noisy single-colour JPEGs (a few PNGs among them)."""
    rng = np.random.default_rng(seed)
    for name, colour in (colours or CLASS_COLOURS).items():
        for i in range(per_class):
            fmt = 'png' if i % 10 == 9 else 'jpeg'
            extension = 'png' if fmt == 'png' else 'jpg'
            write_image(os.path.join(root, name, f'{name}_{i:03d}.{extension}'), colour, rng,
                        shape=shape, fmt=fmt)
    return root


def _mean_colour(images: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(images, axis=[1, 2])


def mean_colour_extractor(cache_suffix: str = '_m'):
    """A real (if trivial) TF feature extractor, each image's mean colour: in-process cache tests
    without a module."""
    from retrain.features.extractors import FeatureExtractor
    return FeatureExtractor(function=_mean_colour, image_size=(8, 8), bottleneck_size=3,
                            cache_suffix=cache_suffix, description='mean colour')


@pytest.fixture(scope='session')
def image_dir(tmp_path_factory) -> str:
    """Three separable classes of 30 images each (read-only by convention: copy to modify)."""
    return make_image_folder(str(tmp_path_factory.mktemp('images') / 'colours'))


@pytest.fixture
def shared_dir() -> str:
    if not os.path.isdir(SHARED_DIR):
        pytest.skip(f'{SHARED_DIR} is absent (it holds the real models and photos)')
    return SHARED_DIR


def retrain_args(image_dir: str, module: str, out: str, steps: int = 30, *extra: str) -> list:
    """A retrain command line writing everything below `out`: bn/, graph.pb, labels.txt and
    summaries/. `extra` flags come last, so they also override these (absl: the last one wins)."""
    return ['--image_dir', image_dir, '--tfhub_module', module,
            '--bottleneck_dir', os.path.join(out, 'bn'),
            '--output_graph', os.path.join(out, 'graph.pb'),
            '--output_labels', os.path.join(out, 'labels.txt'),
            '--summaries_dir', os.path.join(out, 'summaries'),
            '--how_many_training_steps', str(steps), '--learning_rate', '0.5', *extra]


# retrain's output flags whose classic defaults are absolute /tmp paths
# (docs/COMPATIBILITY.md section 1).
CLASSIC_TMP_OUTPUTS = ('output_graph', 'output_labels', 'summaries_dir', 'bottleneck_dir',
                       'intermediate_output_graphs_dir')
_SCRATCH = {}


@pytest.fixture(scope='session', autouse=True)
def _scratch_for_classic_defaults(tmp_path_factory):
    _SCRATCH['root'] = str(tmp_path_factory.mktemp('classic_defaults'))


def _module_command(module: str, args: Sequence[str], env_extra, cwd: str) -> dict:
    """subprocess keyword arguments for `python -m module args...` run as a user would.

    A retrain run first gets every /tmp output flag pointed into a fresh temporary folder (the
    test's own flags come later and win): a test that forgets one, or a regression in a run
    meant to fail early, never overwrites /tmp/output_graph.pb or deletes /tmp/retrain_logs.
    """
    if module == 'retrain':
        scratch = tempfile.mkdtemp(dir=_SCRATCH['root'])
        args = (*(f'--{name}={os.path.join(scratch, name)}' for name in CLASSIC_TMP_OUTPUTS),
                *args)
    env = dict(os.environ, PYTHONIOENCODING='utf-8',
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.update(env_extra or {})
    return dict(args=[sys.executable, '-m', module, *args], env=env, cwd=cwd)


def run_module(module: str, *args: str, timeout: float = 600, env_extra=None,
               cwd: str = REPO_ROOT) -> subprocess.CompletedProcess:
    """Runs `python -m module args...` to its end; returns the finished process (text output)."""
    return subprocess.run(**_module_command(module, args, env_extra, cwd), capture_output=True,
                          text=True, encoding='utf-8', timeout=timeout)


def start_module(module: str, *args: str, env_extra=None, cwd: str = REPO_ROOT,
                 **popen) -> subprocess.Popen:
    """Starts `python -m module args...` (for tests that interrupt it); `popen`: its streams.

    Ctrl-C reaches the child as it would at a terminal. A shell's background job (`pytest &`) and
    a pytest-xdist worker ignore SIGINT, and an ignored signal stays ignored across exec, while a
    handled one is reset: so the handler is set for the start. (Not in the child with preexec_fn:
    that forces fork() over vfork(), and gRPC, loaded by the Beam tests, then restarts its poller
    in the child, which dies on the closed descriptors before exec.)
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(**_module_command(module, args, env_extra, cwd), **popen)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Reports that any stream carries: tests of names that are not UTF-8 log and fail with them,
    and pytest-xdist's workers send reports as strict UTF-8 (a lone surrogate crashes them)."""
    report = (yield).get_result()
    report.sections = [(name, readable(text)) for name, text in report.sections]
    if report.longrepr is not None and readable(str(report.longrepr)) != str(report.longrepr):
        report.longrepr = readable(str(report.longrepr))


def closed_port_url(path: str = '') -> str:
    """An http:// URL on a local port that was just bound and closed: connections are refused
    (unlike a fixed port such as 9, which a machine may well serve)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    return f'http://127.0.0.1:{port}/{path}'


def fixed_split(image_dir: str) -> Tuple[str, str]:
    """(cwd, image dir relative to it) for a run whose split is the same in every test run.

    The split hashes each image's path as given, and fixtures live in a new temporary folder each
    time: run the CLI from the folder's parent with its name alone, and the paths hashed are
    always `colours/red/red_000.jpg` and so on.
    """
    return os.path.dirname(image_dir), os.path.basename(image_dir)


LABEL_IMAGE_SCORE_LINE = re.compile(r'^(\w+) \(score = (\d\.\d{5})\)$')


def rendered_in_chromium(html: str, profile: str) -> Tuple[str, int]:
    """(the DOM headless Chromium renders from the page at `html`, the page's <img> count);
    skips the test where Chromium is not installed."""
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if not chromium:
        pytest.skip('chromium is not installed (apt-get install chromium)')
    with open(html, encoding='utf-8') as f:
        images = f.read().count('<img ')
    dom = subprocess.run(
        [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
         f'--user-data-dir={profile}', '--virtual-time-budget=20000', '--dump-dom',
         'file://' + os.path.abspath(html)],
        capture_output=True, text=True, encoding='utf-8', timeout=300, check=True).stdout
    return dom, images


# How far a format's unknown score may stray from the frozen graph's, in validation spreads: the
# score is a difference of float32 sums in the thousands (retrain.train.unknown), and each format
# orders those sums its own way (about 1e-5 apart on MobileNet V2, up to 1e-2 on the tiny module).
UNKNOWN_SCORE_BAND = 0.05


def assert_judged_alike(judged, expected) -> None:
    """A format's unknown scores agree with the graph's within the band, and so does its judgement
    wherever the graph's score is outside it (within it, either side of 0 is float32 noise)."""
    judged, expected = np.asarray(judged), np.asarray(expected)
    np.testing.assert_allclose(judged, expected, rtol=1e-4, atol=UNKNOWN_SCORE_BAND)
    clear = np.abs(expected) > UNKNOWN_SCORE_BAND
    assert clear.mean() >= 0.5, expected  # Most images are clear: the check means something.
    assert ((judged > 0) == (expected > 0))[clear].all()


def label_image_blocks(stdout: str) -> Dict[str, list]:
    """{path: [(label, score), ...]} from label_image's text output (the `unknown` line of an
    image a model judges unlike its training images left out)."""
    blocks = {}
    for block in stdout.strip().split('\n\n'):
        path, *lines = block.splitlines()
        if lines and lines[0].startswith('unknown ('):
            lines = lines[1:]
        blocks[path] = [(m.group(1), float(m.group(2)))
                        for m in map(LABEL_IMAGE_SCORE_LINE.match, lines)]
    return blocks


def tflite_interpreter(**model):
    """The interpreter that deploys TensorFlow Lite models today (LiteRT), allocated;
    TensorFlow's own where LiteRT is not installed, its deprecation notice silenced.
    `model`: model_path= or model_content=, as both take them."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            interpreter = tf.lite.Interpreter(**model)
    else:
        interpreter = Interpreter(**model)
    interpreter.allocate_tensors()
    return interpreter
