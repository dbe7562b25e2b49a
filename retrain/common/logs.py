"""Log lines a person can read: `I 2026-12-02 11:09:31.184790: message`, one timestamp each.

absl's default prefix (`I1202 11:09:31.184790 140208148282240 training.py:174] `) adds a thread
id and a source location nobody running the tool needs, and a second timestamp to the classic
lines, which carry their own (`<datetime>: Step <i>: Train accuracy = <x.x>%`, docs/COMPATIBILITY.md
section 6; people grep them, so their text is kept exactly). Here every line is the level's
letter, then one timestamp in the classic format, then the message; a message that already
starts with such a timestamp keeps its own instead of getting a second one.
"""
import datetime
import logging as python_logging
import re

from absl import logging

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


class ReadableFormatter(python_logging.Formatter):
    """`<level letter> <datetime>: <message>` (and a traceback, if the record carries one)."""

    def format(self, record: python_logging.LogRecord) -> str:
        text = readable(super().format(record))
        if not _STAMPED.match(text):
            created = datetime.datetime.fromtimestamp(record.created)
            text = f'{created.isoformat(" ", "microseconds")}: {text}'
        return f'{record.levelname[:1]} {text}'


def setup(verbosity: str) -> None:
    """Readable lines on stderr, at `verbosity` (a --logging_verbosity value)."""
    logging.use_absl_handler()
    logging.get_absl_handler().setFormatter(ReadableFormatter())
    logging.set_verbosity(LEVELS[verbosity])
