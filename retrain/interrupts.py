"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal lands; if
that is a finalizer (TensorFlow runs many), the exception is swallowed and a run the user stopped
goes on to write its outputs. The CLI's handler therefore also remembers the request, and the long
loops and the output stage call `check()`, which raises it again.
"""
import signal
import threading

_requested = threading.Event()


def install() -> None:
    """Handles SIGINT from now on (unless it is ignored, as for background jobs)."""
    def handler(signum, frame):  # pylint: disable=unused-argument
        _requested.set()
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)


def check() -> None:
    """Raises KeyboardInterrupt if Ctrl-C was pressed, even if its first raise was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt
