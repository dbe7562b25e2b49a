"""The outputs of a run, all or nothing: checked before any work, staged, moved into place together.

A run's outputs belong together: a new graph beside an older run's labels makes label_image print
the wrong names with confidence. So every output path is checked before caching starts (one line
naming the path and the reason), each output is written to a temporary beside its target, and only
when all are written are they moved into place, with Ctrl-C held off. A failure on the way puts
back what was there; no temporary is left behind, nor a folder made for the outputs. A tool only
ever removes what it wrote: a folder is replaced only when it is empty or holds a SavedModel and
nothing else.
"""
import contextlib
import os
from types import ModuleType
from typing import Iterator, List, Optional, Tuple

import tensorflow as tf

from retrain.common import fileio, interrupts
from retrain.common.errors import ToolError
from retrain.common.places import is_local
from retrain.config import FILE, FOLDER, RetrainConfig
from retrain.export import outputs


def _nearest_existing(path: str) -> Optional[str]:
    """`path` or its closest existing ancestor; None past the root of a remote file system."""
    if is_local(path):
        path = os.path.abspath(path)
    while not tf.io.gfile.exists(path):
        parent = os.path.dirname(path)
        if parent == path or not parent or parent.endswith(':'):
            return None
        path = parent
    return path


def _missing_folders(folder: str) -> List[str]:
    """The local folders that making `folder` would create, deepest first."""
    missing = []
    while folder and is_local(folder) and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _check_creatable(folder: str, path: str) -> None:
    """`folder` exists and can take new files, or can be created: a probe file is written."""
    existing = _nearest_existing(folder.rstrip('/\\') or '.')
    if existing is None:
        return  # A bucket-like root: makedirs creates what it needs, errors come when writing.
    if not tf.io.gfile.isdir(existing):
        raise ToolError(f'cannot write {path}: {existing} is a file, not a folder')
    if is_local(path):  # The names still to be made; the OS says so only when writing.
        for name in os.path.relpath(os.path.abspath(path), existing).split(os.sep):
            if len(os.fsencode(name)) > fileio.NAME_MAX:
                raise ToolError(f'cannot write {path}: the name {name[:24]}... is '
                                f'{len(os.fsencode(name))} bytes long, over the '
                                f'{fileio.NAME_MAX} that file systems take')
    probe = fileio.temp_name(os.path.join(existing, 'probe'), 'probe')
    try:
        with tf.io.gfile.GFile(probe, 'wb') as f:
            f.write(b'')  # GFile opens the file at the first write.
    except (tf.errors.OpError, OSError) as e:
        raise ToolError(f'cannot write {path}: {existing} is not writable '
                        f'({fileio.failure_reason(e)})') from None
    fileio.remove_quietly(probe)


def check_file(path: str) -> None:
    """Refuses an output file that could not be written: a folder there, or no writable parent
    (where a symbolic link points: the output is written there, fileio.through_links)."""
    if tf.io.gfile.isdir(path):
        raise ToolError(f'cannot write {path}: it is a folder, not a file')
    _check_creatable(os.path.dirname(fileio.through_links(path)), path)


def check_folder(path: str) -> None:
    """Refuses an output folder (written into as the run goes) that is a file or not writable."""
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        raise ToolError(f'cannot write to {path}: it is a file, not a folder')
    _check_creatable(path, path)


def check_cache_folder(path: str) -> None:
    """Refuses a bottleneck dir that is a file or lies below one (before the model loads, not at
    its first cache file). One that cannot be written is not refused: a full cache is only read."""
    existing = _nearest_existing(path.rstrip('/\\') or '.')
    if existing is not None and not tf.io.gfile.isdir(existing):
        raise ToolError(f'cannot use --bottleneck_dir {path}: {existing} is a file, not a folder')


def check_replaced(path: str, writer: ModuleType) -> None:
    """Refuses a folder replaced whole that its `writer` may not replace (its check_output: a
    tool only removes what it wrote) or whose parent cannot take it."""
    writer.check_output(path)
    _check_creatable(os.path.dirname(fileio.through_links(path.rstrip('/\\'))), path)


def check_run(config: RetrainConfig) -> None:
    """Every output of the run can be written (one line naming the first that cannot): each
    as its place asks, then as its writer asks (retrain.export.outputs); and the bottleneck
    cache is, or can become, a folder."""
    check_cache_folder(config.bottleneck_dir)
    for output, path, place in outputs.wanted(config):
        if place == FILE:
            check_file(path)
        elif place == FOLDER:
            check_folder(path)
        else:
            check_replaced(path, output.module())


class Staging:
    """Outputs written to temporaries beside their targets, waiting to be moved into place."""

    def __init__(self):
        self._staged: List[Tuple[str, str]] = []  # (temporary, target)
        self._made: List[str] = []  # Folders made for them, deepest first: removed if unused.

    @contextlib.contextmanager
    def output(self, target: str) -> Iterator[str]:
        """Yields the temporary path to write `target` to; errors become one line naming it."""
        target = fileio.through_links(target.rstrip('/\\') or target)
        temp = fileio.temp_name(target)
        self._staged.append((temp, target))
        try:
            with fileio.write_failures(target):
                self._made[:0] = _missing_folders(os.path.dirname(temp))
                fileio.make_parent_dirs(temp)
                yield temp
        except ToolError as e:
            message = fileio.without_temporary_names(str(e).replace(temp, target))
            raise ToolError(message) from None

    def discard(self) -> None:
        for temp, _ in self._staged:
            fileio.remove_quietly(temp)
        for folder in self._made:
            with contextlib.suppress(OSError):  # Not empty: something else was put there.
                os.rmdir(folder)

    def commit(self) -> None:
        """Moves every output into place, or (on an error) puts back everything that was there.

        Each old output is first renamed aside, so that it can be restored, and removed once all
        new ones are in place.
        """
        aside: List[Tuple[str, str]] = []  # (old output's new name, target)
        moved: List[str] = []
        with interrupts.deferred():
            try:
                for temp, target in self._staged:
                    if tf.io.gfile.exists(target):
                        old = fileio.temp_name(target, 'old')
                        tf.io.gfile.rename(target, old)
                        aside.append((old, target))
                    tf.io.gfile.rename(temp, target)
                    moved.append(target)
            except (tf.errors.OpError, OSError) as e:
                failed = target  # The loops below name others.
                for written in moved:
                    fileio.remove_quietly(written)
                for old, original in aside:
                    tf.io.gfile.rename(old, original)
                self.discard()
                raise ToolError(f'cannot write {failed}: {fileio.failure_reason(e, failed)}; '
                                f'the earlier outputs were kept') from None
            for old, _ in aside:
                fileio.remove_quietly(old)


@contextlib.contextmanager
def staged() -> Iterator[Staging]:
    """Outputs written in the block are moved into place together when it ends without error;
    after an error or Ctrl-C (even one that ends the process inside TensorFlow: the interrupts'
    watchdog), their temporaries are removed and the old outputs stay."""
    staging = Staging()
    with interrupts.removed_if_forced(staging.discard):
        try:
            yield staging
            interrupts.check()  # A Ctrl-C TensorFlow swallowed: nothing is moved, all is removed.
        except BaseException:
            with interrupts.deferred():
                staging.discard()
            raise
        staging.commit()
