"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal lands; if
that is a finalizer (TensorFlow runs many), the exception is swallowed and a run the user stopped
goes on to write its outputs. The CLI's handler therefore also remembers the request, and the long
loops and the output stage call `check()`, which raises it again. Inside `deferred()` the handler
only remembers it: steps that must all happen or none (moving outputs into place) are not cut.
"""
import contextlib
import signal
import sys
import threading
from typing import Iterator

_requested = threading.Event()
_deferring = threading.Event()


def install() -> None:
    """Handles SIGINT from now on (unless it is ignored, as for background jobs).

    Once Ctrl-C was pressed, what Python can only report ("Exception ignored in ...", with a
    traceback) is not shown: the KeyboardInterrupt swallowed by a finalizer, or the finalizer of
    an object the interrupt cut short in its constructor (TensorFlow's import options: no
    attribute 'options'). The tool ends with its one line. Before that, such reports show as ever.
    """
    def handler(signum, frame):  # pylint: disable=unused-argument
        _requested.set()
        if not _deferring.is_set():
            raise KeyboardInterrupt

    def report_unraisable(unraisable) -> None:
        if not _requested.is_set():
            default_hook(unraisable)

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)
        default_hook = sys.unraisablehook
        sys.unraisablehook = report_unraisable


def check() -> None:
    """Raises KeyboardInterrupt if Ctrl-C was pressed, even if its first raise was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Holds Ctrl-C off while the block runs (with the CLI's handler), then raises it."""
    if _deferring.is_set():  # Nested: the outer block raises it.
        yield
        return
    _deferring.set()
    try:
        yield
    finally:
        _deferring.clear()
    check()
