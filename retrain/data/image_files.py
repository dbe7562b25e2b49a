"""Which files below a folder are images: one rule for what retrain trains on and what
label_image classifies, so one folder means the same photos to both.

- Extensions: EXTENSIONS, in any case. The classic scripts took CLASSIC_EXTENSIONS; files are
  decoded by content, so more formats are welcome, and a file's split depends on its path alone,
  so accepting them never moves a classic file (COMPATIBILITY.md section 3).
- Hidden files and folders are skipped: names starting with '.' (`.x.jpg`, the `._photo.jpg`
  resource forks macOS leaves on shared drives, which hold no image) and Windows' Thumbs.db and
  desktop.ini.
- Folder links are not followed unless asked (retrain: they are not followed, so a link to a
  parent never loops nor duplicates a class). When asked (label_image), each folder is walked
  once, the links after the real folders, never into a folder that holds the one searched.
  A link to a file is a file.
- Local folders are listed by os, which keeps names that are not valid UTF-8 (gfile fails on
  them) and tells file types without a stat per file; others (gs://) by tf.io.gfile.
- Only regular files (and links to them, or broken links, which are then reported as
  unreadable) are files: a pipe named like an image would hang the run, a device never ends.
"""
import os
from typing import Iterator, List, Optional, Sequence, Set, Tuple

from retrain.common.places import is_local

# Extensions the classic scripts collected (jpg jpeg JPG JPEG); their split never changes.
CLASSIC_EXTENSIONS = ('jpg', 'jpeg')
# Files are decoded by content, so other formats TensorFlow decodes are welcome too.
EXTENSIONS = CLASSIC_EXTENSIONS + ('png', 'bmp', 'gif', 'webp')
_HIDDEN_NAMES = ('thumbs.db', 'desktop.ini')


def _gfile():
    """tf.io.gfile, for folders that are not local; imported on first use, so that the config
    can tell image names before TensorFlow loads (a usage error stays instant and quiet)."""
    import tensorflow as tf
    return tf.io.gfile


def is_hidden(name: str) -> bool:
    return name.startswith('.') or name.lower() in _HIDDEN_NAMES


def has_image_extension(name: str, extensions: Sequence[str] = EXTENSIONS) -> bool:
    return os.path.splitext(name)[1][1:].lower() in extensions


def is_image_name(name: str, extensions: Sequence[str] = EXTENSIONS) -> bool:
    """Whether a file of this name, found in a folder, is taken as an image."""
    return not is_hidden(name) and has_image_extension(name, extensions)


def listdir(path: str) -> List[str]:
    """Sorted names in folder `path`; gfile ends sub-folder names with a slash on some file
    systems (GCS), which is dropped."""
    names = os.listdir(path) if is_local(path) else _gfile().listdir(path)
    return sorted(name.rstrip('/\\') for name in names)


def isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else _gfile().isdir(path)


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else _gfile().exists(path)


def is_regular(path: str) -> bool:
    """Whether an existing `path` is a file that can be read to its end (module doc): not a
    device or a pipe. Object stores hold nothing else."""
    return not is_local(path) or os.path.isfile(path)


def find(top: str, follow_folder_links: bool = False,
         extensions: Sequence[str] = EXTENSIONS) -> List[str]:
    """The image files below folder `top` (by `extensions`), as paths relative to it: each
    folder's files in sorted order, then those of its sub-folders, in sorted order (the order
    retrain has always used). Object stores have no links: `follow_folder_links` only matters
    for local folders."""
    found = []
    for folder, names in _folders(top, follow_folder_links and is_local(top)):
        prefix = os.path.relpath(folder, top) if folder != top else ''
        found.extend(os.path.join(prefix, name) if prefix else name
                     for name in sorted(names) if is_image_name(name, extensions))
    return found


def _folders(top: str, follow_links: bool) -> Iterator[Tuple[str, List[str]]]:
    """(folder, file names) for `top` and each folder below it that is not hidden, top-down,
    sub-folders in sorted order; folder links as the module docstring says."""
    walked = _folders_above(top) if follow_links else set()
    pending = [top]
    while pending:
        for folder, subdirs, names in _walk(pending.pop(0)):
            subdirs[:] = sorted(d.rstrip('/\\') for d in subdirs if not is_hidden(d))
            if follow_links:
                identity = _identity(folder)
                if identity in walked:
                    subdirs[:] = []
                    continue
                walked.add(identity)
                pending.extend(path for path in (os.path.join(folder, d) for d in subdirs)
                               if os.path.islink(path))
            yield folder, names


def _walk(top: str):
    """os.walk's (folder, sub-folders, files) top-down, sub-folders changed in place by the
    caller: for local folders our own (folder links are not entered, files are regular ones, see
    the module doc), else gfile's."""
    return _local_walk(top) if is_local(top) else _gfile().walk(top)


def _local_walk(top: str) -> Iterator[Tuple[str, List[str], List[str]]]:
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:  # As os.walk: a folder that cannot be listed is left out.
            continue
        subdirs, files = [], []
        for entry in entries:
            try:
                if entry.is_dir():
                    subdirs.append(entry.name)
                elif entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path)):
                    files.append(entry.name)
            except OSError:  # A link that loops, which is_dir cannot follow: broken too.
                if entry.is_symlink():
                    files.append(entry.name)
        yield folder, subdirs, files
        pending.extend(path for path in (os.path.join(folder, d) for d in reversed(subdirs))
                       if not os.path.islink(path))


def _folders_above(top: str) -> Set[Optional[Tuple[int, int]]]:
    """The identities of the folders that hold `top`: a link to one of them (`up -> ..`) would
    lead back into `top` forever."""
    above = set()
    folder = os.path.realpath(top)
    while os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
        above.add(_identity(folder))
    return above


def _identity(folder: str) -> Optional[Tuple[int, int]]:
    """(device, inode): one folder however many links lead to it; None if it cannot be read."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino
