"""Multi-label images: each image once, with its set of labels and one split for all its copies.

Three ways to give labels (--multi_label):
  class folders        an image file sitting in several class folders has all their labels
                       (`car/photo.jpg` and `accident/photo.jpg`: one image, labels car, accident)
  --image_labels_dir   `<image file name>.txt` per image, one label a line (the
                       Multi-label-Inception-net fork); the folders under image_dir only hold images
  --image_labels_file  a UTF-8 CSV of `path/relative/to/image_dir.jpg,label1;label2` rows

An image's identity is its path inside its class folder (class folders), its file name (label
files: that is what names its label file) or its path relative to image_dir (table). The split is
the classic hash (image_lists.which_set) of that identity written with `/`, so every copy of an
image lands in the same split (the fork hashed each folder's copy apart: test images leaked into
training), and the split does not depend on where the checkout lies. Its bottleneck is cached
once, at its first location in sorted folder order.
"""
import csv
import dataclasses
import io
import os
from typing import Dict, Iterable, List, Set

import tensorflow as tf
from absl import logging

from retrain.common import fileio
from retrain.data import image_lists
from retrain.common.errors import RetrainError
from retrain.data.image_lists import CATEGORIES, ImageClass


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

    def cache_classes(self) -> List[ImageClass]:
        """The images grouped by folder as bottleneck_cache takes them (one cache file each)."""
        folders: Dict[str, ImageClass] = {}
        for category in CATEGORIES:
            for image in self.images[category]:
                folder = folders.setdefault(image.folder, ImageClass(image.folder, image.folder))
                folder.images(category).append(image.relative)
        return [folders[name] for name in sorted(folders)]


def gather(image_dir: str, testing_percentage: float, validation_percentage: float,
           image_labels_dir: str = '', image_labels_file: str = '') -> MultiLabelImages:
    """Every labelled image of `image_dir` once, by the form the flags choose (module doc)."""
    if image_labels_dir and image_labels_file:
        raise RetrainError('give --image_labels_dir or --image_labels_file, not both')
    if image_labels_dir:
        found = _from_label_files(image_dir, image_labels_dir)
    elif image_labels_file:
        found = _from_table(image_dir, image_labels_file)
    else:
        found = _from_class_folders(image_dir, testing_percentage, validation_percentage)
    labels = sorted(set().union(*(image.labels for image in found)))
    if len(labels) < 2:
        raise RetrainError(f'{len(labels)} label(s) found for the images of {image_dir!r}; '
                           'multi-label training needs at least two')
    images: Dict[str, List[LabelledImage]] = {category: [] for category in CATEGORIES}
    for image in sorted(found, key=lambda i: i.key):
        images[image_lists.which_set(image.key, validation_percentage,
                                     testing_percentage)].append(image)
    return MultiLabelImages(labels, images)


def _from_class_folders(image_dir: str, testing_percentage: float,
                        validation_percentage: float) -> List[LabelledImage]:
    by_key: Dict[str, LabelledImage] = {}
    for image_class in image_lists.create_image_lists(image_dir, testing_percentage,
                                                      validation_percentage):
        for relative in sorted(rel for c in CATEGORIES for rel in image_class.images(c)):
            image = by_key.setdefault(_key(relative), LabelledImage(
                _key(relative), image_class.dir_name, relative, set()))
            image.labels.add(image_class.label)
    return list(by_key.values())


def _from_label_files(image_dir: str, labels_dir: str) -> List[LabelledImage]:
    if not tf.io.gfile.isdir(labels_dir):
        raise RetrainError(f'--image_labels_dir not found: {labels_dir!r}')
    label_files = {name for name in tf.io.gfile.listdir(labels_dir) if name.endswith('.txt')}
    found: Dict[str, LabelledImage] = {}
    for location in _all_images(image_dir):
        name = os.path.basename(location)
        if name in found:
            continue  # The same image in another folder: one example.
        labels_name = name + '.txt'
        if labels_name not in label_files:
            logging.warning('No labels for %s: no %s in %s', os.path.join(image_dir, location),
                            labels_name, labels_dir)
            continue
        label_files.discard(labels_name)
        path = os.path.join(labels_dir, labels_name)
        text = fileio.read_text(path, 'labels file')
        labels = {line.strip() for line in text.splitlines() if line.strip()}
        if _has_labels(labels, os.path.join(image_dir, location), path):
            found[name] = LabelledImage(name, os.path.dirname(location),
                                        os.path.basename(location), labels)
    for name in sorted(label_files - {n + '.txt' for n in found}):
        logging.warning('Labels file %s names no image in %s', os.path.join(labels_dir, name),
                        image_dir)
    return list(found.values())


def _from_table(image_dir: str, table: str) -> List[LabelledImage]:
    rows = _read_table(table)
    found: List[LabelledImage] = []
    for location in _all_images(image_dir):
        key = _key(location)
        if key not in rows:
            logging.warning('No labels for %s: it is not in %s', os.path.join(image_dir, location),
                            table)
            continue
        labels = rows.pop(key)
        if _has_labels(labels, os.path.join(image_dir, location), table):
            found.append(LabelledImage(key, os.path.dirname(location),
                                       os.path.basename(location), labels))
    for key in sorted(rows):
        logging.warning('%s labels %s, which is not an image in %s', table, key, image_dir)
    return found


def _read_table(path: str) -> Dict[str, Set[str]]:
    """{image path with '/': labels} from the rows of the CSV; a header row is recognized by its
    first cell not being an image file name."""
    rows: Dict[str, Set[str]] = {}
    text = fileio.read_text(path, 'labels file')
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not row[0].strip():
            continue
        if len(row) != 2:
            raise RetrainError(f'{path} line {number}: expected path,label1;label2 '
                               f'but got {len(row)} fields')
        image, labels = row[0].strip(), row[1]
        if number == 1 and not _is_image_name(image):
            continue
        rows.setdefault(_key(image), set()).update(
            label.strip() for label in labels.split(';') if label.strip())
    return rows


def _has_labels(labels: Set[str], image: str, source: str) -> bool:
    if not labels:
        logging.warning('No labels for %s in %s', image, source)
    return bool(labels)


def _all_images(image_dir: str) -> Iterable[str]:
    """The image files below image_dir (relative to it), in sorted order."""
    if not image_dir or not tf.io.gfile.isdir(image_dir):
        raise RetrainError(f'image directory not found: {image_dir!r}')
    return image_lists.find_class_files(image_dir)


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1][1:].lower() in image_lists.EXTENSIONS


def _key(relative: str) -> str:
    """An image's identity as the split hashes it: its relative path, always with `/`."""
    return '/'.join(part for part in relative.replace('\\', '/').split('/') if part)

