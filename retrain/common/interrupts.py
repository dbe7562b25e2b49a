"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal lands; if
that is a finalizer (TensorFlow runs many), the exception is swallowed and a run the user stopped
goes on to write its outputs. The CLI's handler therefore also remembers the request, and the long
loops and the output stage call `check()`, which raises it again. Inside `deferred()` the handler
only remembers it: steps that must all happen or none (moving outputs into place) are not cut.

Python runs its handler only when the main thread runs Python: inside one long TensorFlow call
(a model that loops forever, a TFLite conversion) Ctrl-C would wait for the call to end. A tool
that gives `install` its interrupted line also gets a watchdog thread, woken by the signal itself
(signal.set_wakeup_fd, written from C): if the tool has not ended _GRACE_S after Ctrl-C (and is
not inside `deferred()`), it removes the temporaries registered with `removed_if_forced` (a tool
only leaves what it wrote complete), prints the line and ends the process with exit code 130.
"""
import contextlib
import importlib
import os
import signal
import socket
import sys
import threading
import time
from typing import Callable, Iterator, List, NoReturn, Optional

_GRACE_S = 1.0  # Time the main thread gets to end the usual way (its line, its clean-up).
_requested = threading.Event()
_deferring = threading.Event()
_reporting = threading.Lock()
_line: Optional[str] = None
_cleanups: List[Callable[[], None]] = []  # What the watchdog undoes before it ends the process.
_cleanups_lock = threading.Lock()


def install(line: Optional[str] = None) -> None:
    """Handles SIGINT from now on (unless it is ignored, as for background jobs); with `line`
    (what `report` prints), also ends the process if the main thread does not end in time.

    Once Ctrl-C was pressed, what Python can only report ("Exception ignored in ...", with a
    traceback) is not shown: the KeyboardInterrupt swallowed by a finalizer, or the finalizer of
    an object the interrupt cut short in its constructor (TensorFlow's import options: no
    attribute 'options'). The tool ends with its one line. Before that, such reports show as ever.
    """
    global _line
    _line = line  # Printed by report() even where SIGINT is ignored and no watchdog runs.

    def handler(signum, frame):
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
        if line is not None:
            _start_watchdog()


def launch(module: str, program: str) -> None:
    """Runs the `run()` of a tool's CLI `module`: the entry point of its command and of
    `python -m`. A Ctrl-C that lands before the tool installs its handler (while its modules
    load) also ends with one line (`<program>: interrupted`) and exit code 130, not a traceback;
    so does an exception that escapes the tool after Ctrl-C.
    """
    global _line
    try:
        importlib.import_module(module).run()
    except KeyboardInterrupt:
        if not _requested.is_set():  # Python's own handler raised it: the tool had set no line.
            _line = f'{program}: interrupted'
        end_interrupted()
    except Exception:  # noqa: BLE001  After Ctrl-C, whatever escaped is the interrupt's doing.
        if _requested.is_set():
            end_interrupted()
        raise


def report() -> None:
    """Prints the interrupted line given to `install` on stderr, once, whoever calls first."""
    global _line
    with _reporting:
        line, _line = _line, None
    if line is not None:
        print(line, file=sys.stderr, flush=True)


def _start_watchdog() -> None:
    receiving, sending = socket.socketpair()
    sending.setblocking(False)  # The C handler must never block on it.
    signal.set_wakeup_fd(sending.fileno(), warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(receiving, sending), name='ctrl-c watchdog',
                     daemon=True).start()


def _watch(receiving: socket.socket, sending: socket.socket) -> None:
    """Waits for SIGINT, gives the main thread _GRACE_S (and any deferred step), then ends it.

    `sending` is kept referenced here: closing it would stop the wake-ups."""
    while signal.SIGINT not in receiving.recv(64):
        pass
    time.sleep(_GRACE_S)
    while _deferring.is_set():
        time.sleep(0.05)
    with _cleanups_lock:
        for cleanup in reversed(_cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001  The others still run; the process ends anyway.
                pass
    end_interrupted()  # The main thread cannot be unwound.


def end_interrupted() -> NoReturn:
    """Prints the interrupted line (once) and ends the process with exit code 130, now.

    Not through sys.exit: CPython ends a process by SIGINT (return code -2, not 130) when a
    KeyboardInterrupt once escaped code it ran through PyRun_* (as extension modules run Python
    code), even where the tool caught that interrupt; a full-suite run saw it."""
    _flush(sys.stdout)
    report()
    _flush(sys.stderr)
    os._exit(130)


def _flush(stream) -> None:
    """Flushes `stream` unless that blocks (a reader that stopped reading) or fails."""
    def flush() -> None:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    flushing = threading.Thread(target=flush, daemon=True)
    flushing.start()
    flushing.join(_GRACE_S)


@contextlib.contextmanager
def removed_if_forced(cleanup: Callable[[], None]) -> Iterator[None]:
    """While the block runs, `cleanup` (removing its temporaries) runs if the watchdog ends the
    process; the block's own error handling covers every other way out."""
    with _cleanups_lock:
        _cleanups.append(cleanup)
    try:
        yield
    finally:
        with _cleanups_lock:
            _cleanups.remove(cleanup)


def requested() -> bool:
    """Whether Ctrl-C was pressed (with the CLI's handler), even if its raise was swallowed."""
    return _requested.is_set()


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
