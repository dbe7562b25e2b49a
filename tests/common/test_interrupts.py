"""retrain.common.interrupts: Ctrl-C ends a tool with its one line, whatever Python cannot raise."""
import os
import signal
import subprocess
import sys

from conftest import REPO_ROOT

_SCRIPT = '''
import os, signal, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # As at a terminal.
from retrain.common import interrupts
interrupts.install()

class CutShort:
    """Like TensorFlow's ScopedTFImportGraphDefOptions when Ctrl-C lands in its constructor."""
    def __del__(self):
        raise AttributeError("'CutShort' object has no attribute 'options'")

CutShort()  # Before any Ctrl-C: reported as Python always does.
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)
except KeyboardInterrupt:
    pass
CutShort()  # After it: the tool's own line is all the user sees.
print('ended')
'''


def test_after_ctrl_c_what_python_cannot_raise_is_not_shown():
    """A Ctrl-C while TensorFlow built the TFLite model once printed a finalizer's traceback."""
    result = subprocess.run([sys.executable, '-c', _SCRIPT], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == 'ended\n', result.stderr
    assert result.stderr.count('Exception ignored') == 1, result.stderr
    assert result.stderr.count("no attribute 'options'") == 1, result.stderr


_SWALLOWING = '''
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # As at a terminal.
from retrain.common import interrupts
interrupts.install('tool: interrupted')
started = False
while True:  # Like a finalizer that swallows every KeyboardInterrupt, or a call that never returns.
    try:
        if not started:  # Said inside the try: a Ctrl-C that lands while printing is swallowed too.
            started = True
            print('looping', flush=True)
        sys.stdin.readline()
    except KeyboardInterrupt:
        pass
'''


def _interrupted(script: str, first_line: str, cwd: str = REPO_ROOT):
    """(exit code, the rest of stdout, stderr) of `python -c script`, given Ctrl-C once it has
    printed `first_line`."""
    child = subprocess.Popen([sys.executable, '-c', script], cwd=cwd, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO_ROOT), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == first_line
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, stdout, stderr


def test_a_tool_that_cannot_be_unwound_still_ends_with_its_line_and_130():
    code, _, stderr = _interrupted(_SWALLOWING, 'looping\n')
    assert code == 130 and stderr == 'tool: interrupted\n', stderr


_LAUNCHING = '''
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # As at a terminal.
from retrain.common.interrupts import launch
launch('slow_cli', 'tool')
'''
_SLOW_CLI = '''
import time
print('loading', flush=True)
time.sleep(60)  # Like absl and the CLI's own modules, before the tool's handler is set.


def run():
    print('ran')
'''


def test_ctrl_c_while_the_cli_loads_is_one_line_and_130(tmp_path):
    """Before launch, a Ctrl-C in the first tenth of a second of `retrain` was a traceback."""
    (tmp_path / 'slow_cli.py').write_text(_SLOW_CLI)
    code, stdout, stderr = _interrupted(_LAUNCHING, 'loading\n', cwd=str(tmp_path))
    assert code == 130 and stderr == 'tool: interrupted\n' and not stdout, stderr



_FAILING_CLI = '''
import sys
from retrain.common.cli_args import error, run_main


def main(argv):
    try:
        print('loading', flush=True)
        sys.stdin.readline()
    except KeyboardInterrupt:  # As TensorFlow's loader turns it into an error of its own.
        {failure}
    return 0


def run():
    run_main('tool', main)
'''


def test_an_error_after_ctrl_c_ends_the_tool_as_interrupted(tmp_path):
    """A Ctrl-C while retrain loaded its module once ended in 'cannot load module' and exit 1."""
    for failure in ("return error('tool', 'cannot load module: no reason')",
                    "raise RuntimeError('error return without exception set')"):
        (tmp_path / 'slow_cli.py').write_text(_FAILING_CLI.format(failure=failure))
        code, stdout, stderr = _interrupted(_LAUNCHING, 'loading\n', cwd=str(tmp_path))
        assert code == 130 and stderr == 'tool: interrupted\n' and not stdout, (failure, stderr)
