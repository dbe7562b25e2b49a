"""What a person reads on the terminal while a tool works: log lines and progress bars.

Log lines: `I 2026-12-02 11:09:31.184790: message`, one timestamp each.

absl's default prefix (`I1202 11:09:31.184790 140208148282240 training.py:174] `) adds a thread
id and a source location nobody running the tool needs, and a second timestamp to the classic
lines, which carry their own (`<datetime>: Step <i>: Train accuracy = <x.x>%`, docs/COMPATIBILITY.md
section 6; people grep them, so their text is kept exactly). Here every line is the level's
letter, then one timestamp in the classic format, then the message; a message that already
starts with such a timestamp keeps its own instead of getting a second one.

Progress bars (Progress) show count, rate and ETA of long work. On a terminal a bar redraws one
line; otherwise (logs, CI, pipes) it prints a plain line every few seconds, so log files stay
readable.
"""
import datetime
import logging as python_logging
import re
import sys
import time
from typing import Any, Optional, Sequence, TextIO

from absl import logging

from retrain.common import interrupts

LEVELS = {'DEBUG': logging.DEBUG, 'INFO': logging.INFO, 'WARN': logging.WARNING,
          'ERROR': logging.ERROR, 'FATAL': logging.FATAL}
_STAMPED = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?: ')


def readable(text: str) -> str:
    """`text` with the bytes of names that are not UTF-8 shown as `\\xe9` (as `ls -b` does),
    not as the lone surrogates Python decodes them to, which no UTF-8 stream can carry."""
    try:
        return text.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
    except UnicodeEncodeError:  # A lone surrogate that is no escaped byte.
        return text.encode('utf-8', 'backslashreplace').decode('utf-8')


def as_logged(value: Any) -> Any:
    """`value` (JSON data: dicts, lists, strings ...) with every string, keys too, readable: JSON
    that holds lone surrogates (`\\udcff`) is refused by strict parsers; `\\xff` is plain text."""
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, dict):
        return {as_logged(k): as_logged(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_logged(v) for v in value]
    return value


# Control characters as Python writes them in a string literal (\\n, \\x1b): a file name, a
# label or a model's op name holding a line break or a terminal escape must not start a line of
# its own (a forged "done") nor recolour the terminal.
_CONTROLS = {c: repr(chr(c))[1:-1] for c in [*range(0x20), 0x7f]}


def one_line(text: str) -> str:
    """`text` readable (non-UTF-8 bytes as `\\xe9`) and on one line (control characters as
    escapes): what the tools print about names they did not choose."""
    return readable(text).translate(_CONTROLS)


class ReadableFormatter(python_logging.Formatter):
    """`<level letter> <datetime>: <message>` (and a traceback, if the record carries one); the
    message on one line (one_line)."""

    def format(self, record: python_logging.LogRecord) -> str:
        record = python_logging.makeLogRecord({**record.__dict__, 'args': None,
                                               'msg': one_line(record.getMessage())})
        text = readable(super().format(record))
        if not _STAMPED.match(text):
            created = datetime.datetime.fromtimestamp(record.created)
            text = f'{created.isoformat(" ", "microseconds")}: {text}'
        return f'{record.levelname[:1]} {text}'


def all_named(noun: str, plural: str, names: Sequence[str]) -> str:
    """"class 'a' has" or "classes 'a', 'b' have": an error names every culprit at once, so a
    user fixes them in one go, not one run each."""
    return (f'{noun} {names[0]} has' if len(names) == 1 else
            f'{plural} {", ".join(names)} have')


def setup(verbosity: str) -> None:
    """Readable lines on stderr, at `verbosity` (a --logging_verbosity value)."""
    logging.use_absl_handler()
    logging.get_absl_handler().setFormatter(ReadableFormatter())
    logging.set_verbosity(LEVELS[verbosity])


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'
    return f'{seconds // 60}:{seconds % 60:02d}'


class Progress:
    """Tracks `done` out of `total` units of work and reports them to a stream."""

    def __init__(self, description: str, total: int, unit: str = 'images',
                 stream: Optional[TextIO] = None, interval: Optional[float] = None):
        self.description = description
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.is_terminal = bool(getattr(self.stream, 'isatty', lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.is_terminal else 5.0)
        self.done = 0
        self.start = time.monotonic()
        self._last_report = self.start

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        percent = 100.0 * self.done / self.total if self.total else 100.0
        eta = _format_seconds((self.total - self.done) / rate) if rate > 0 else '?'
        return (f'{self.description}: {self.done}/{self.total} {self.unit} ({percent:.0f}%), '
                f'{rate:.1f} {self.unit}/s, ETA {eta}')

    def update(self, count: int = 1) -> None:
        interrupts.check()  # Long loops report here, so a Ctrl-C is acted on within one step.
        self.done += count
        now = time.monotonic()
        if now - self._last_report >= self.interval:
            self._last_report = now
            self._write(self.line())

    def close(self) -> None:
        elapsed = time.monotonic() - self.start
        self._write(f'{self.description}: {self.done}/{self.total} {self.unit} in '
                    f'{_format_seconds(elapsed)} ({self.rate():.1f} {self.unit}/s)', final=True)

    def _write(self, text: str, final: bool = False) -> None:
        if self.is_terminal:
            self.stream.write('\r' + text + ('\n' if final else ''))
        else:
            self.stream.write(text + '\n')
        self.stream.flush()
