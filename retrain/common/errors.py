"""The one exception type all three tools turn into a one-line message instead of a traceback."""
import os
import re
import sys
from typing import NoReturn

_OURS_NAMED = re.compile(rf'^{re.escape(__name__)}\.\w+: ')  # `retrain.common.errors.ToolError: `


class ToolError(Exception):
    """A problem with the user's input or environment (bad flag, missing file, unusable module).

    The message must make sense on its own, on one line: it names the file or value at fault and
    the reason. The CLIs print it and exit non-zero; nothing else is shown.
    """


class ConfigError(ToolError):
    """A setting no run can use: a usage error (exit code 2), found before any work starts."""


def error_summary(error: BaseException) -> str:
    """The first line of a TensorFlow (or OS) error, without TF's op and function decorations."""
    message = (getattr(error, 'message', None) or getattr(error, 'strerror', None)
               or str(error)).strip()
    message = message.splitlines()[0] if message else type(error).__name__
    message = re.sub(r'^\{\{[^}]*\}\}\s*', '', message)
    return message.split(' [Op:')[0].strip()


def error_cause(error: BaseException) -> str:
    """The last line of an error that says what went wrong, for errors that put the root cause
    last (graph execution, Beam runners), without TF's node and traceback lines, and without the
    type of our own errors where a worker's traceback names it (`retrain.common.errors.ToolError:
    cannot write ...`): their message is the whole line."""
    lines = [line.strip() for line in (getattr(error, 'message', None) or str(error)).splitlines()]
    reasons = [line for line in lines if line and not line.startswith(('[[', 'File ', 'Detected '))]
    if not reasons:
        return type(error).__name__
    return _OURS_NAMED.sub('', reasons[-1].split(' [Op:')[0])


def exit_as_the_reader_left() -> NoReturn:
    """Ends a CLI whose reader went away (`| head`: BrokenPipeError), quietly, with code 1.

    stdout goes to the null device first: Python flushes it again at exit, which would fail
    once more and print a traceback.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
