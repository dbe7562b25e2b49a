"""Finding the images, naming the classes and the stable training/validation/testing split.

Every immediate sub-folder of the image directory is a class; sorted folder names define the
class indices. Each file goes to a split by a hash of its path alone, so adding images later never
moves an existing image from training into testing (which would make old results meaningless).
The rules are those of the classic retrain.py (docs/COMPATIBILITY.md section 3), byte for byte.
"""
import dataclasses
import hashlib
import os
import re
from typing import Dict, List, Tuple

import tensorflow as tf
from absl import logging

from retrain.cache.binary_index import is_local
from retrain.common.errors import RetrainError

# The hash is reduced modulo this + 1; the classic scripts also warned above this many per class.
MAX_NUM_IMAGES_PER_CLASS = 2 ** 27 - 1
# Extensions the classic scripts collected (jpg jpeg JPG JPEG); their split never changes.
CLASSIC_EXTENSIONS = ('jpg', 'jpeg')
# Files are decoded by content, so other formats TensorFlow decodes are welcome too.
EXTENSIONS = CLASSIC_EXTENSIONS + ('png', 'bmp', 'gif', 'webp')
MIN_IMAGES_WARNING = 20
CATEGORIES = ('training', 'validation', 'testing')


@dataclasses.dataclass
class ImageClass:
    """One class: its label, its folder and its images per split (paths relative to the folder)."""
    label: str
    dir_name: str
    training: List[str] = dataclasses.field(default_factory=list)
    validation: List[str] = dataclasses.field(default_factory=list)
    testing: List[str] = dataclasses.field(default_factory=list)

    def images(self, category: str) -> List[str]:
        return getattr(self, category)

    def count(self) -> int:
        return sum(len(self.images(c)) for c in CATEGORIES)


def label_for_dir(dir_name: str) -> str:
    """Lower-cases and turns each run of non-alphanumeric characters into one space.

    For ASCII names this is exactly the classic `re.sub(r'[^a-z0-9]+', ' ', name.lower())`; unlike
    it, letters and digits of other scripts are kept, so `玫瑰` and `café` stay readable.
    """
    return re.sub(r'[\W_]+', ' ', dir_name.lower())


def path_bytes(path: str) -> bytes:
    """The bytes that name `path`: its UTF-8, or for a name that is not valid UTF-8 (which Python
    holds with surrogate escapes), the file system's own bytes. TensorFlow takes either form."""
    try:
        return path.encode('utf-8')
    except UnicodeEncodeError:
        return os.fsencode(path)


def split_percentage(file_path: str) -> float:
    """The classic per-file hash, in [0, 100]: where `file_path` falls among the splits.

    `_nohash_` and anything after it is ignored, so variants of one recording or photo land in
    the same split. A name that is not valid UTF-8 is hashed as its bytes (as Python 2 did).
    """
    hash_name = re.sub(r'_nohash_.*$', '', file_path)
    digest = hashlib.sha1(path_bytes(hash_name)).hexdigest()
    return (int(digest, 16) % (MAX_NUM_IMAGES_PER_CLASS + 1)) * (100.0 / MAX_NUM_IMAGES_PER_CLASS)


def which_set(file_path: str, validation_percentage: float, testing_percentage: float) -> str:
    percentage = split_percentage(file_path)
    if percentage < validation_percentage:
        return 'validation'
    if percentage < testing_percentage + validation_percentage:
        return 'testing'
    return 'training'


def _is_hidden(name: str) -> bool:
    return name.startswith('.') or name.lower() in ('thumbs.db', 'desktop.ini')


def _listdir(path: str) -> List[str]:
    """Sorted names in `path`. Local folders are listed by os, which keeps names that are not
    valid UTF-8 (gfile fails on them); gfile returns sub-directories with a trailing slash on some
    file systems (GCS)."""
    names = os.listdir(path) if is_local(path) else tf.io.gfile.listdir(path)
    return sorted(name.rstrip('/\\') for name in names)


def _isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else tf.io.gfile.isdir(path)


def _walk(top: str):
    """os.walk for local folders (it knows file types without a stat per file, keeps names that
    are not valid UTF-8, and does not follow folder links, so a link to a parent never loops),
    else gfile's."""
    return os.walk(top) if is_local(top) else tf.io.gfile.walk(top)


def find_class_files(class_dir: str) -> List[str]:
    """Image files below `class_dir`, as paths relative to it; nested folders are searched too."""
    found = []
    for folder, subdirs, files in _walk(class_dir):
        subdirs[:] = sorted(d.rstrip('/\\') for d in subdirs if not _is_hidden(d))
        prefix = os.path.relpath(folder, class_dir) if folder != class_dir else ''
        found.extend(os.path.join(prefix, name) if prefix else name for name in sorted(files)
                     if not _is_hidden(name)
                     and os.path.splitext(name)[1][1:].lower() in EXTENSIONS)
    return found


def create_image_lists(image_dir: str, testing_percentage: float,
                       validation_percentage: float) -> List[ImageClass]:
    """Lists the classes of `image_dir` in class-index order with each image's split.

    Raises RetrainError when the folder is missing or holds fewer than two usable classes.
    """
    if not image_dir or not _isdir(image_dir):
        if image_dir and tf.io.gfile.exists(image_dir):
            raise RetrainError(f'image directory {image_dir!r} is a file: give the folder that '
                               'holds one sub-folder of images per class')
        raise RetrainError(f'image directory not found: {image_dir!r}')
    classes: List[ImageClass] = []
    labels_seen: Dict[str, str] = {}
    for dir_name in _listdir(image_dir):
        class_dir = os.path.join(image_dir, dir_name)
        if _is_hidden(dir_name) or not _isdir(class_dir):
            continue
        files = find_class_files(class_dir)
        if not files:
            logging.warning('No files found in %s', class_dir)
            continue
        if len(files) < MIN_IMAGES_WARNING:
            logging.warning('WARNING: Folder %s has less than %d images, which may cause issues.',
                            class_dir, MIN_IMAGES_WARNING)
        elif len(files) > MAX_NUM_IMAGES_PER_CLASS:
            logging.warning('WARNING: Folder %s has more than %d images. Some images will never '
                            'be selected.', class_dir, MAX_NUM_IMAGES_PER_CLASS)
        label = label_for_dir(dir_name)
        if not label.strip():
            raise RetrainError(f'class folder {class_dir!r} gives an empty label; rename it')
        if label in labels_seen:
            raise RetrainError(f'class folders {labels_seen[label]!r} and {dir_name!r} both give '
                               f'the label {label!r}; rename one of them')
        labels_seen[label] = dir_name
        image_class = ImageClass(label=label, dir_name=dir_name)
        for relative in files:
            path = os.path.join(image_dir, dir_name, relative)
            image_class.images(which_set(path, validation_percentage, testing_percentage)).append(
                relative)
        classes.append(image_class)
    if not classes:
        raise RetrainError(f'no class folders with images found in {image_dir!r}')
    if len(classes) == 1:
        raise RetrainError(f'only one class folder found in {image_dir!r} ({classes[0].dir_name!r}); '
                           'multiple classes are needed for classification')
    return classes


def image_path(image_dir: str, image_class: ImageClass, relative: str) -> str:
    return os.path.join(image_dir, image_class.dir_name, relative)


def split_counts(classes: List[ImageClass]) -> Tuple[int, int, int]:
    return tuple(sum(len(c.images(cat)) for c in classes) for cat in CATEGORIES)
