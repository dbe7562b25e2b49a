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


def test_a_name_holding_a_line_break_or_an_escape_stays_on_its_line():
    name = 'bad\nW 2026-12-05 04:27:35.118147: Done in 1.0 s\x1b[31m.jpg'
    line = _line('Skipping %s: not an image', name)
    assert line.splitlines() == [line] and '\x1b' not in line
    assert line.endswith(r'Skipping bad\nW 2026-12-05 04:27:35.118147: Done in 1.0 s\x1b[31m.jpg: '
                         'not an image')


def test_a_record_s_traceback_keeps_its_lines():
    try:
        raise ValueError('boom')
    except ValueError:
        import sys
        record = logging.LogRecord('absl', logging.ERROR, __file__, 1, 'failed', (),
                                   sys.exc_info())
    text = ReadableFormatter().format(record)
    assert text.splitlines()[0].endswith(': failed') and text.splitlines()[-1] == (
        'ValueError: boom')
