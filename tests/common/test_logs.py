"""retrain/common/logs.py: the log lines a person reads."""
import logging
import os
import re

from retrain.common.logs import ReadableFormatter


def _line(message: str, *args) -> str:
    record = logging.LogRecord('absl', logging.WARNING, __file__, 1, message, args, None)
    return ReadableFormatter().format(record)


def test_one_timestamp_and_the_classic_lines_keep_their_own():
    assert re.fullmatch(r'W \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}: Folder red has few images',
                        _line('Folder %s has few images', 'red'))
    classic = '2026-12-02 11:09:31.184790: Step 10: Train accuracy = 90.0%'
    assert _line(classic) == f'W {classic}'


def test_names_that_are_not_utf8_are_shown_byte_by_byte_on_any_stream():
    line = _line('Skipping %s: not an image', os.fsdecode(b'caf\xe9/2\xff.jpg'))
    assert line.endswith(r'Skipping caf\xe9/2\xff.jpg: not an image')
    line.encode('utf-8')  # Strict: a UTF-8 log file or pipe takes it.
    assert _line('na\u00efve %s', 'caf\u00e9').endswith('na\u00efve caf\u00e9')  # Real text stays.
