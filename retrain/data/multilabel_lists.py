"""Multi-label images: each image once, with its set of labels and one split for all its copies.

Three ways to give labels (--multi_label):
  class folders        an image file sitting in several class folders has all their labels
                       (`car/photo.jpg` and `accident/photo.jpg`: one image, labels car, accident)
  --image_labels_dir   `<image file name>.txt` per image, one label a line (the
                       Multi-label-Inception-net fork); the folders under image_dir only hold
                       images; labels are read as a table's (label_table.label_of, warn_of_case)
  --image_labels_file  a UTF-8 CSV of `path/relative/to/image_dir.jpg,label1;label2` rows

Copies: files that share their path inside their class folders (class folders) or their file
name (label files) are one image only if their bytes are identical. Cameras name files
`IMG_0001.jpg` in every folder: different photos sharing a name are different images, each with
the labels of the folders that hold it (label files: the one label file of that name applies to
each, with a warning). Only files whose name occurs more than once are compared: by size, then
by a hash of their bytes.

The split is the classic hash (image_lists.which_set) of an image's key: its path inside its class
folder (class folders), its file name (label files) or its path relative to image_dir (table),
written with `/`. So every copy of an image lands in the same split (the fork hashed each
folder's copy apart: test images leaked into training), and the split does not depend on where
the checkout lies. Where different photos share a name, the one found first (sorted folder
order) keeps that key and each other is keyed by its path relative to image_dir
(`roses/001.jpg`): every image whose name clashes with no other photo keeps the split it always
had, and so does the first of those that clash. (A key only places an image in a split: two
images sharing one would share their split.) Each image's bottleneck is cached once, at its
first location in sorted folder order.

The table is read by retrain.data.label_table (paths normalized, rows outside image_dir
skipped); rows giving one image different label sets are merged (it gets every label given)
with a warning naming them.

With --split_folders (class folders only), train/, validation/ (or val/) and test/ each hold class
folders: every image lies in the split of its folder, and copies are looked for within a split.
"""
import dataclasses
import hashlib
import os
from typing import Callable, Dict, Hashable, Iterable, List, Sequence, Set, Tuple

import tensorflow as tf
from absl import logging

from retrain.common import fileio
from retrain.common.errors import ConfigError, ToolError
from retrain.common.places import is_local
from retrain.data import image_files, image_lists, label_table, split_folders
from retrain.data.image_lists import CATEGORIES, ClassFolder
from retrain.data.label_table import all_images, has_labels, split_key

_READ_CHUNK = 1 << 20


@dataclasses.dataclass
class LabelledImage:
    """One image: where its bottleneck is computed from (image_dir/folder/relative), its labels."""
    key: str
    folder: str
    relative: str
    labels: Set[str]


@dataclasses.dataclass
class MultiLabelImages:
    """The labels in output order and the images of each split."""
    labels: List[str]
    images: Dict[str, List[LabelledImage]]



def gather(image_dir: str, testing_percentage: float, validation_percentage: float,
           image_labels_dir: str = '', image_labels_file: str = '',
           by_split_folders: bool = False) -> MultiLabelImages:
    """Every labelled image of `image_dir` once, by the form the flags choose (module doc)."""
    if image_labels_dir and image_labels_file:
        raise ConfigError('give --image_labels_dir or --image_labels_file, not both')
    if by_split_folders:
        folders = split_folders.find(image_dir)
        images = {category: _from_class_folders(image_dir, folder, category == 'training')
                  for category, folder in folders.items()}
        split_folders.check_labels(folders, {
            category: sorted(set().union(*(image.labels for image in found)))
            for category, found in images.items()})
    else:
        if image_labels_dir:
            found = _from_label_files(image_dir, image_labels_dir)
        elif image_labels_file:
            found = [LabelledImage(key, os.path.dirname(location), os.path.basename(location),
                                   labels)
                     for location, key, labels in label_table.labelled_images(
                         image_dir, image_labels_file, 'path,label1;label2', label_table.merged,
                         label_table.MULTI_LABEL_DELIMITERS)]
        else:
            found = _from_class_folders(image_dir)
        images = {category: [] for category in CATEGORIES}
        for image in found:
            images[image_lists.which_set(image.key, validation_percentage,
                                         testing_percentage)].append(image)
    labels = sorted(set().union(*(image.labels for split in images.values() for image in split)))
    if len(labels) < 2:
        raise ToolError(f'{len(labels)} label(s) found for the images of {image_dir!r}; '
                        'multi-label training needs at least two')
    return MultiLabelImages(labels, {category: sorted(images.get(category, []),
                                                      key=lambda i: i.key)
                                     for category in CATEGORIES})


def _from_class_folders(image_dir: str, split_folder: str = '',
                        trains: bool = True) -> List[LabelledImage]:
    """The images of the class folders of image_dir, or of its `split_folder` (whose name then
    leads their keys and folders); folders with few images are warned about where they train."""
    top = os.path.join(image_dir, split_folder) if split_folder else image_dir
    copies: Dict[str, List[Tuple[ClassFolder, str]]] = {}
    for folder in image_lists.class_folders(top):
        if trains:
            image_lists.warn_about_size(os.path.join(top, folder.dir_name), len(folder.files))
        for relative in sorted(folder.files):
            copies.setdefault(split_key(relative), []).append((folder, relative))
    found, clashes = [], []
    for key, places in copies.items():
        photos = _distinct_photos(top, key, [os.path.join(folder.dir_name, relative)
                                             for folder, relative in places])
        if len(photos) > 1:
            clashes.append(key)
        for photo_key, photo in photos:
            first, relative = places[photo[0]]
            found.append(LabelledImage(
                split_key(os.path.join(split_folder, photo_key)),
                os.path.join(split_folder, first.dir_name) if split_folder else first.dir_name,
                relative, {places[i][0].label for i in photo}))
    if clashes:
        logging.warning('%d file name(s) name different photos in different class folders (%s): '
                        'each photo is an image of its own, labelled by the folders that hold it',
                        len(clashes), _some(clashes))
    return found


def _some(names: List[str], shown: int = 3) -> str:
    return ', '.join(names[:shown]) + (', ...' if len(names) > shown else '')


def _from_label_files(image_dir: str, labels_dir: str) -> List[LabelledImage]:
    if not image_files.isdir(labels_dir):
        raise ToolError(f'--image_labels_dir not found: {labels_dir!r}')
    label_files = {name for name in image_files.listdir(labels_dir) if name.endswith('.txt')}
    by_name: Dict[str, List[str]] = {}
    for location in all_images(image_dir):
        by_name.setdefault(os.path.basename(location), []).append(location)
    found: List[LabelledImage] = []
    for name, locations in by_name.items():
        where = ', '.join(os.path.join(image_dir, location) for location in locations)
        if name + '.txt' not in label_files:
            logging.warning('No labels for %s: no %s in %s', where, name + '.txt', labels_dir)
            continue
        path = os.path.join(labels_dir, name + '.txt')
        text = fileio.read_text(path, 'labels file')
        labels = {label_table.label_of(line) for line in text.splitlines() if line.strip()}
        if has_labels(labels, where, path):
            found.extend(_labelled_photos(image_dir, name, locations, labels, path))
    for name in sorted(label_files - {n + '.txt' for n in by_name}):
        logging.warning('Labels file %s names no image in %s', os.path.join(labels_dir, name),
                        image_dir)
    label_table.warn_of_case(labels_dir, set().union(*(image.labels for image in found)))
    return found


def _labelled_photos(image_dir: str, name: str, locations: List[str], labels: Set[str],
                     labels_path: str) -> List[LabelledImage]:
    """The images among the files called `name` (paths relative to image_dir), all labelled by
    the one labels file of that name: a warning says so when they are different photos."""
    photos = _distinct_photos(image_dir, name, locations)
    if len(photos) > 1:
        logging.warning('Labels file %s applies to %d different images named %s: %s', labels_path,
                        len(photos), name, '; '.join(
                            ' = '.join(os.path.join(image_dir, locations[i]) for i in photo)
                            for _, photo in photos))
    return [LabelledImage(key, os.path.dirname(locations[photo[0]]),
                          os.path.basename(locations[photo[0]]), labels) for key, photo in photos]


def _distinct_photos(image_dir: str, key: str,
                     locations: List[str]) -> List[Tuple[str, List[int]]]:
    """(split key, indices into `locations`) of each different photo among the files that share
    `key` (`locations`: relative to image_dir, in sorted folder order). The first photo keeps
    `key`; each other is keyed by its location, so no split moves where names do not clash."""
    photos = _same_photos([os.path.join(image_dir, location) for location in locations])
    return [(key if index == 0 else split_key(locations[photo[0]]), photo)
            for index, photo in enumerate(photos)]


def _same_photos(paths: Sequence[str]) -> List[List[int]]:
    """The indices of `paths` grouped by identical bytes, the groups in order of their first
    index. Only files of one size are read; a file that cannot be read is a photo of its own."""
    if len(paths) == 1:
        return [[0]]
    photos = []
    for same_size in _grouped(range(len(paths)), lambda i: _size(paths[i])):
        photos.extend(_grouped(same_size, lambda i: _digest(paths[i]))
                      if len(same_size) > 1 else [same_size])
    return sorted(photos)


def _grouped(items: Iterable[int], key: Callable[[int], Hashable]) -> List[List[int]]:
    groups: Dict[Hashable, List[int]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def _size(path: str) -> Hashable:
    try:
        return os.path.getsize(path) if is_local(path) else tf.io.gfile.stat(path).length
    except (OSError, tf.errors.OpError):
        return path


def _digest(path: str) -> Hashable:
    digest = hashlib.sha256()
    try:
        with (open(path, 'rb') if is_local(path) else tf.io.gfile.GFile(path, 'rb')) as f:
            for chunk in iter(lambda: f.read(_READ_CHUNK), b''):
                digest.update(chunk)
    except (OSError, tf.errors.OpError):
        return path
    return digest.hexdigest()
