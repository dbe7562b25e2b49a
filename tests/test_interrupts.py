"""retrain.common.interrupts: Ctrl-C ends a tool with its one line, whatever Python cannot raise."""
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
