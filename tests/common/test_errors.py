"""retrain.common.errors: the one line a failure is told in."""
from retrain.common.errors import ToolError, error_cause


def test_the_cause_of_a_worker_traceback_is_our_message_without_its_type():
    """Beam's multi-process workers send back their traceback: its last line once kept
    'retrain.common.errors.ToolError: ' before the message."""
    remote = Exception('Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
                       f'{ToolError.__module__}.ToolError: cannot write /c/a.txt: No space left\n')
    assert error_cause(remote) == 'cannot write /c/a.txt: No space left'
    assert error_cause(Exception('OSError: [Errno 28] No space left')) == (
        'OSError: [Errno 28] No space left')  # Another type says something: it stays.
