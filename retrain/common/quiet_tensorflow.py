"""Importing TensorFlow without its start-up chatter on the terminal.

TensorFlow's C++ side prints CUDA probing, oneDNN and CPU-feature notices to stderr when it
loads, before Python logging exists; users took them for errors. The CLIs import TensorFlow
through here: those lines are captured and dropped, unless the import fails (then they are
shown). TF_CPP_MIN_LOG_LEVEL does not hide them all (absl's "All log messages before
absl::InitializeLog()" line and the CUDA errors come whatever it is, and setting it is the usual
advice), so they are captured whatever its value; for the rest of the run TensorFlow's C++ side
logs errors only (level 2), or less where the user set 3. With debug, a level the user set is
kept as it is. TensorFlow's Python side logs too, for
the whole run: deprecation notices ("Instructions for updating: ..."), the names of temporary
files it writes, retracing advice; some of its modules log through absl instead (the TFLite
converter's "Using experimental converter: If you encountered a problem please file a bug").
None of it is for the person running the tools, so only its errors are shown, unless they asked
for debug output.

TensorFlow's modules are hundreds of thousands of Python objects that live until exit. Once they
are loaded they are frozen out of the garbage collector's sight (`gc.freeze`), which otherwise
walks them in every full collection and once more at exit: 0.7 s of a 5 s run on 2 cores.

TensorFlow imports Keras whole (to register Keras's optimizers for SavedModels that hold them),
about 0.9 s of every start, and Keras imports matplotlib.pyplot where it is installed. The tools
use neither: both are hidden while TensorFlow loads (TensorFlow and Keras expect either may be
absent), and visible again afterwards; `tf.keras` still loads Keras on first use.
"""
import contextlib
import gc
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, Optional

_QUIET_LEVEL = 3  # TF_CPP_MIN_LOG_LEVEL for the run: TensorFlow's C++ side logs nothing.


def import_tensorflow(debug: bool = False) -> None:
    """Imports TensorFlow, quietly; with `debug`, TensorFlow's own Python log lines are kept."""
    logging.getLogger('tensorflow').setLevel(logging.DEBUG if debug else logging.ERROR)
    absl_logger = logging.getLogger('absl')
    (absl_logger.removeFilter if debug else absl_logger.addFilter)(_only_tensorflow_errors)
    if 'tensorflow' in sys.modules:
        return
    if not debug or 'TF_CPP_MIN_LOG_LEVEL' not in os.environ:
        os.environ['TF_CPP_MIN_LOG_LEVEL'] = str(max(_QUIET_LEVEL, _user_level()))
    with _hidden('matplotlib'), _hidden('keras'):
        _import_quietly()
    _keras_api_paths_restored()
    gc.freeze()


def _user_level() -> int:
    """The TF_CPP_MIN_LOG_LEVEL the user set (0: all, 3: nothing); 0 when unset or not a number."""
    try:
        return int(os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0'))
    except ValueError:
        return 0


def _only_tensorflow_errors(record: logging.LogRecord) -> bool:
    """False for what TensorFlow's own modules log through absl below ERROR."""
    tensorflow = sys.modules.get('tensorflow')
    return (record.levelno >= logging.ERROR or tensorflow is None
            or not record.pathname.startswith(os.path.dirname(tensorflow.__file__) + os.sep))


@contextlib.contextmanager
def _hidden(package: str):
    """`import package` fails inside (as where it is not installed), unless it is loaded already."""
    if package in sys.modules:
        yield
        return
    sys.modules[package] = None  # The import system's marker for "cannot be imported".
    try:
        yield
    finally:
        if sys.modules.get(package, ...) is None:
            del sys.modules[package]


@contextlib.contextmanager
def c_stderr_hidden(noise: Optional[str] = None) -> Iterator[None]:
    """What C++ code prints on stderr (file descriptor 2, past Python's logging) inside is dropped,
    unless the block fails: then it is shown, to explain the failure (not on Ctrl-C). With
    `noise` (a regular expression), only the lines it matches are dropped; the others are shown
    after the block (the block may log lines of its own)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = False
        try:
            yield
        except Exception:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode('utf-8', 'replace').splitlines(keepends=True)
            if not failed:
                lines = [line for line in lines if noise and not re.match(noise, line)]
            sys.stderr.write(''.join(lines))


def _keras_api_paths_restored() -> None:
    """Puts back the folders of Keras's API that TensorFlow adds to its package path (so that
    `import tensorflow.keras.layers` works), which it could not find while Keras was hidden."""
    import tensorflow as tf

    from retrain.common.tf_internals import module_util
    legacy = os.environ.get('TF_USE_LEGACY_KERAS') in ('true', 'True', '1')
    found = [module_util.get_parent_dir_for_name(name) for name in (
        'tf_keras.api._v2.keras' if legacy else 'keras.api._v2.keras', 'keras._tf_keras.keras')]
    missing = [index for index, entry in enumerate(tf.__path__) if entry is None]
    for index, folder in zip(missing, found):
        tf.__path__[index] = folder
    tf.__path__[:] = [entry for entry in tf.__path__ if entry is not None]


def _import_quietly() -> None:
    with c_stderr_hidden():
        import tensorflow as tf
        tf.config.list_physical_devices('GPU')  # Device probing prints now, not mid-run.
