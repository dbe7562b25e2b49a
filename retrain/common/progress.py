"""A small progress bar for long work: count, rate and ETA.

On a terminal it redraws one line; otherwise (logs, CI, pipes) it prints a plain line every few
seconds, so log files stay readable.
"""
import sys
import time
from typing import Optional, TextIO

from retrain.common import interrupts


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
