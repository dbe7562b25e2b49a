"""Whether two paths name one place, or one lies inside the other: the checks that keep a run
from writing an output over an input or over another output.

Free of TensorFlow: the CLI runs them before loading it.
"""
import os


def is_local(path: str) -> bool:
    """Whether `path` is on a local disk (os reads it, names that are not UTF-8 included), not a
    URL for tf.io.gfile (gs://, s3://, ram://)."""
    return '://' not in path


def is_utf8(path: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (which Python holds as surrogates):
    TensorFlow's file functions cannot take it, only os can."""
    try:
        path.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def place(path: str) -> str:
    """`path` in a form that compares equal for one place: absolute, through symbolic links, in
    the case the platform compares in; remote paths (gs://) as given, without a final slash."""
    if not is_local(path):
        return path.rstrip('/')
    return os.path.normcase(os.path.realpath(path))


def is_inside(inner: str, outer: str) -> bool:
    """Whether place `inner` lies below place `outer` (both as `place` gives them)."""
    separator = os.sep if is_local(outer) else '/'
    return inner.startswith(outer.rstrip(separator) + separator)
