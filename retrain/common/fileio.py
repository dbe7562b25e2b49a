"""Files through tf.io.gfile (local paths, gs:// and friends): user text read, outputs written.

Local user text is read with Python's open: tf.io.gfile cannot read a pipe, nor a name that is
not UTF-8.

Every output of the project is written to a temporary name beside its destination and renamed
into place, so a reader never sees a half-written file, even after kill -9.
"""
import codecs
import contextlib
import os
import re
import uuid
from typing import Iterator, Type, Union

import tensorflow as tf

from retrain.common import interrupts
from retrain.common.errors import ToolError, error_summary
from retrain.common.places import is_local

# The longest file name, in bytes, of the common file systems (ext4, XFS, APFS; NTFS counts 255
# UTF-16 units).
NAME_MAX = 255


def temp_name(path: str, kind: str = 'tmp') -> str:
    """A new hidden name beside `path` (a file or folder), so that renaming it stays on one disk;
    it ends like `path`, so readers that go by the extension (.tflite) read it alike, and is cut
    at the front to NAME_MAX bytes, so an output whose own name is that long can be staged."""
    head, tail = os.path.split(path.rstrip('/\\'))
    prefix = f'.{kind}-{uuid.uuid4().hex[:12]}.'
    while len(os.fsencode(prefix + tail)) > NAME_MAX and len(tail) > 1:
        tail = tail[1:]
    return os.path.join(head, prefix + tail)


# A temporary's path as TensorFlow puts it before the reason of an error: not for users' eyes.
_TEMPORARY_PATH = re.compile(r'\S*\.(tmp|probe|old)-[0-9a-f]{12}\.\S*?; ')


def without_temporary_names(message: str) -> str:
    """`message` without the `<temporary path>; ` that TensorFlow's errors start with."""
    return _TEMPORARY_PATH.sub('', message)


def failure_reason(error: BaseException, path: str = '') -> str:
    """Why a file operation failed, in one line, without the temporary names it involved nor the
    `<path>; ` that TensorFlow's message starts with (the caller names `path` itself)."""
    reason = without_temporary_names(error_summary(error))
    return reason[len(path) + 2:] if path and reason.startswith(f'{path}; ') else reason


def read_text(path: str, what: str, not_text: Type[ToolError] = ToolError) -> str:
    """The text of a file users write (a labels file, a labels table), decoded: UTF-8, with or
    without a byte-order mark, or UTF-16 with one (Windows "Unicode" text, PowerShell 5's `>`).

    UTF-16 without a byte-order mark would decode as UTF-8 into text full of NULs, so NULs are
    refused. Errors are ToolErrors naming `what` and `path`; content that is not such text
    raises `not_text` (a ConfigError where the file is a setting of the run: a labels table).
    """
    try:
        data = _read_bytes(path)
    except (tf.errors.NotFoundError, FileNotFoundError):
        raise ToolError(f'{what} not found: {path}') from None
    except (tf.errors.OpError, OSError, ValueError) as e:  # ValueError: a NUL in the name.
        raise ToolError(f'cannot read {what} {path}: {failure_reason(e, path)}') from None
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = data.decode('utf-16' if utf16 else 'utf-8-sig')
    except UnicodeDecodeError:
        text = '\0' if b'\0' in data else None
    if text is None or '\0' in text:
        hint = (' (it holds NUL characters: UTF-16 without a byte-order mark? Save it as UTF-8)'
                if text else '')
        raise not_text(f'{what} is not UTF-8 text: {path}{hint}')
    return text


def _read_bytes(path: str) -> bytes:
    """All of a file; a local one through Python's open: tf.io.gfile reads 0 bytes from a pipe
    (`--labels <(cat labels.txt)`, /dev/stdin) and cannot open a name that is not UTF-8."""
    if is_local(path):
        with open(path, 'rb') as f:
            return f.read()
    with tf.io.gfile.GFile(path, 'rb') as f:
        return f.read()


def through_links(path: str) -> str:
    """Where an output named `path` is written: where a local symbolic link points (so the link
    stays and its target is updated, as a shell's `>` does), else `path` itself. Replacing the
    link instead would leave its target stale, and clearing a folder through it would empty the
    target."""
    name = path.rstrip('/\\') or path
    return os.path.realpath(name) if is_local(name) and os.path.islink(name) else path


def make_parent_dirs(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)


def atomic_write(path: str, data: Union[bytes, str]) -> None:
    """Writes `data` to `path` so that `path` holds either the old content or all of the new.

    Raises ToolError naming the path when it cannot be written (no permission, disk full).
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    path = through_links(path)
    temp = temp_name(path)
    with _removed_on_failure(path, temp), interrupts.removed_if_forced(
            lambda: remove_quietly(temp)):
        make_parent_dirs(path)
        with tf.io.gfile.GFile(temp, 'wb') as f:
            f.write(data)
        tf.io.gfile.rename(temp, path, overwrite=True)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yields a temporary directory that replaces `path` only when the block succeeds.

    Errors of the block itself propagate unchanged; those of creating and renaming the directory
    become ToolErrors naming `path`.
    """
    path = through_links(path)
    temp = temp_name(path)
    with interrupts.removed_if_forced(lambda: remove_quietly(temp)):
        with _removed_on_failure(path, temp):
            make_parent_dirs(path.rstrip('/\\'))
        try:
            yield temp
        except BaseException:
            remove_quietly(temp)
            raise
        with _removed_on_failure(path, temp):
            if tf.io.gfile.exists(path):
                tf.io.gfile.rmtree(path)
            tf.io.gfile.rename(temp, path)


@contextlib.contextmanager
def write_failures(path: str, what: str = '') -> Iterator[None]:
    """File-system errors of the block (a full disk, no permission) as one-line ToolErrors:
    `cannot write <what><path>: <reason>`."""
    try:
        yield
    except (tf.errors.OpError, OSError) as e:
        raise ToolError(f'cannot write {what}{path}: {failure_reason(e, path)}') from None


@contextlib.contextmanager
def _removed_on_failure(path: str, temp: str) -> Iterator[None]:
    """Removes `temp` when the block fails; file-system errors become one-line ToolErrors."""
    try:
        with write_failures(path):
            yield
    except BaseException:
        remove_quietly(temp)
        raise


def remove_quietly(path: str) -> None:
    """Removes the file or folder `path` if it is there (a symbolic link itself, never what it
    points to); cleaning up must not hide the error."""
    try:
        if is_local(path) and os.path.islink(path):
            os.remove(path)
        elif tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    except (tf.errors.OpError, OSError):
        pass
