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
from typing import Callable, Dict, List, Sequence, Tuple

from absl import logging

from retrain.common.errors import ToolError
from retrain.data import image_files

# The hash is reduced modulo this + 1; the classic scripts also warned above this many per class.
MAX_NUM_IMAGES_PER_CLASS = 2 ** 27 - 1
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


def find_class_files(class_dir: str,
                     extensions: Sequence[str] = image_files.EXTENSIONS) -> List[str]:
    """The images of a class, as paths relative to its folder; nested folders are searched too,
    folder links are not followed (image_files: the rule label_image shares)."""
    return image_files.find(class_dir, extensions=extensions)


@dataclasses.dataclass
class ClassFolder:
    """A folder of images of one class: its label, its name and its images relative to it."""
    label: str
    dir_name: str
    files: List[str]


def class_folders(image_dir: str, label_of: Callable[[str], str] = label_for_dir,
                  keep_empty: bool = False,
                  extensions: Sequence[str] = image_files.EXTENSIONS) -> List[ClassFolder]:
    """The class folders of `image_dir` that hold images (files named with `extensions`; all
    folders, with `keep_empty`), in class-index order, labelled by `label_of` their name (the
    classic label by default).

    Raises ToolError when the folder is missing or a file, or two folders give one label.
    """
    if not image_dir or not image_files.isdir(image_dir):
        if image_dir and image_files.exists(image_dir):
            raise ToolError(f'image directory {image_dir!r} is a file: give the folder that '
                            'holds one sub-folder of images per class')
        raise ToolError(f'image directory not found: {image_dir!r}')
    folders: List[ClassFolder] = []
    labels_seen: Dict[str, str] = {}
    for dir_name in image_files.listdir(image_dir):
        class_dir = os.path.join(image_dir, dir_name)
        if image_files.is_hidden(dir_name) or not image_files.isdir(class_dir):
            continue
        files = find_class_files(class_dir, extensions)
        if not files and not keep_empty:
            logging.warning('No files found in %s', class_dir)
            continue
        label = label_of(dir_name)
        if not label.strip():
            raise ToolError(f'class folder {class_dir!r} gives an empty label; rename it')
        if label in labels_seen:
            raise ToolError(f'class folders {labels_seen[label]!r} and {dir_name!r} both give '
                            f'the label {label!r}; rename one of them')
        labels_seen[label] = dir_name
        folders.append(ClassFolder(label, dir_name, files))
    return folders


def warn_about_size(class_dir: str, count: int) -> None:
    """The classic warnings about a class folder of training images with too few or too many."""
    if count < MIN_IMAGES_WARNING:
        logging.warning('WARNING: Folder %s has less than %d images, which may cause issues.',
                        class_dir, MIN_IMAGES_WARNING)
    elif count > MAX_NUM_IMAGES_PER_CLASS:
        logging.warning('WARNING: Folder %s has more than %d images. Some images will never '
                        'be selected.', class_dir, MAX_NUM_IMAGES_PER_CLASS)


def check_classes(image_dir: str, folders: List[ClassFolder]) -> None:
    """Raises ToolError unless `image_dir` held at least two class folders with images."""
    if not folders:
        raise ToolError(f'no class folders with images found in {image_dir!r}')
    if len(folders) == 1:
        raise ToolError(f'only one class folder found in {image_dir!r} ({folders[0].dir_name!r}); '
                        'multiple classes are needed for classification')


def create_image_lists(image_dir: str, testing_percentage: float,
                       validation_percentage: float) -> List[ImageClass]:
    """Lists the classes of `image_dir` in class-index order with each image's split.

    Raises ToolError when the folder is missing or holds fewer than two usable classes.
    """
    folders = class_folders(image_dir)
    check_classes(image_dir, folders)
    classes = []
    for folder in folders:
        warn_about_size(os.path.join(image_dir, folder.dir_name), len(folder.files))
        image_class = ImageClass(label=folder.label, dir_name=folder.dir_name)
        for relative in folder.files:
            path = os.path.join(image_dir, folder.dir_name, relative)
            image_class.images(which_set(path, validation_percentage, testing_percentage)).append(
                relative)
        classes.append(image_class)
    return classes


def image_path(image_dir: str, image_class: ImageClass, relative: str) -> str:
    return os.path.join(image_dir, image_class.dir_name, relative)


def split_counts(classes: List[ImageClass]) -> Tuple[int, int, int]:
    return tuple(sum(len(c.images(cat)) for c in classes) for cat in CATEGORIES)
