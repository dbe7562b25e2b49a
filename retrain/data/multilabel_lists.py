"""Multi-label images: each image once, with its set of labels and one split for all its copies.

Three ways to give labels (--multi_label):
  class folders        an image file sitting in several class folders has all their labels
                       (`car/photo.jpg` and `accident/photo.jpg`: one image, labels car, accident)
  --image_labels_dir   `<image file name>.txt` per image, one label a line (the
                       Multi-label-Inception-net fork); the folders under image_dir only hold images
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

Table paths are normalized (`./a/b.jpg`, `a/../b.jpg`, Windows backslashes, accents composed or
decomposed as macOS writes them); a path that leaves image_dir (`..`, absolute) names no image
of it and is skipped with a warning. Rows giving one image different label sets are merged (it
gets every label given) with a warning naming them.
"""
import csv
import dataclasses
import hashlib
import io
import os
import posixpath
import re
import unicodedata
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Set, Tuple

import tensorflow as tf
from absl import logging

from retrain.common import fileio
from retrain.common.errors import ToolError
from retrain.common.places import is_local
from retrain.config import ConfigError
from retrain.data import image_files, image_lists
from retrain.data.image_lists import CATEGORIES, ImageClass

_READ_CHUNK = 1 << 20
# A Windows absolute path, once its backslashes are slashes: `C:/photos/a.jpg`.
_DRIVE = re.compile(r'^[A-Za-z]:/')


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
        raise ConfigError('give --image_labels_dir or --image_labels_file, not both')
    if image_labels_dir:
        found = _from_label_files(image_dir, image_labels_dir)
    elif image_labels_file:
        found = _from_table(image_dir, image_labels_file)
    else:
        found = _from_class_folders(image_dir, testing_percentage, validation_percentage)
    labels = sorted(set().union(*(image.labels for image in found)))
    if len(labels) < 2:
        raise ToolError(f'{len(labels)} label(s) found for the images of {image_dir!r}; '
                        'multi-label training needs at least two')
    images: Dict[str, List[LabelledImage]] = {category: [] for category in CATEGORIES}
    for image in sorted(found, key=lambda i: i.key):
        images[image_lists.which_set(image.key, validation_percentage,
                                     testing_percentage)].append(image)
    return MultiLabelImages(labels, images)


def _from_class_folders(image_dir: str, testing_percentage: float,
                        validation_percentage: float) -> List[LabelledImage]:
    copies: Dict[str, List[Tuple[ImageClass, str]]] = {}
    for image_class in image_lists.create_image_lists(image_dir, testing_percentage,
                                                      validation_percentage):
        for relative in sorted(rel for c in CATEGORIES for rel in image_class.images(c)):
            copies.setdefault(_key(relative), []).append((image_class, relative))
    found, clashes = [], []
    for key, places in copies.items():
        photos = _distinct_photos(image_dir, key, [os.path.join(image_class.dir_name, relative)
                                                   for image_class, relative in places])
        if len(photos) > 1:
            clashes.append(key)
        for photo_key, photo in photos:
            first, relative = places[photo[0]]
            found.append(LabelledImage(photo_key, first.dir_name, relative,
                                       {places[i][0].label for i in photo}))
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
    for location in _all_images(image_dir):
        by_name.setdefault(os.path.basename(location), []).append(location)
    found: List[LabelledImage] = []
    for name, locations in by_name.items():
        where = ', '.join(os.path.join(image_dir, location) for location in locations)
        if name + '.txt' not in label_files:
            logging.warning('No labels for %s: no %s in %s', where, name + '.txt', labels_dir)
            continue
        path = os.path.join(labels_dir, name + '.txt')
        text = fileio.read_text(path, 'labels file')
        labels = {line.strip() for line in text.splitlines() if line.strip()}
        if _has_labels(labels, where, path):
            found.extend(_labelled_photos(image_dir, name, locations, labels, path))
    for name in sorted(label_files - {n + '.txt' for n in by_name}):
        logging.warning('Labels file %s names no image in %s', os.path.join(labels_dir, name),
                        image_dir)
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


def _from_table(image_dir: str, table: str) -> List[LabelledImage]:
    rows = _read_table(table)
    found: List[LabelledImage] = []
    used = set()
    for location in _all_images(image_dir):
        key = _key(location)
        row = unicodedata.normalize('NFC', key)
        if row not in rows:
            logging.warning('No labels for %s: it is not in %s', os.path.join(image_dir, location),
                            table)
            continue
        used.add(row)
        if _has_labels(rows[row], os.path.join(image_dir, location), table):
            found.append(LabelledImage(key, os.path.dirname(location),
                                       os.path.basename(location), rows[row]))
    for row in sorted(set(rows) - used):
        logging.warning('%s labels %s, which is not an image in %s', table, row, image_dir)
    return found


def _read_table(path: str) -> Dict[str, Set[str]]:
    """{image key: labels} from the rows of the CSV. A header row is recognized by its first cell
    not being an image file name; rows naming paths outside image_dir are skipped with a
    warning; rows giving one image different labels are merged with one (module doc)."""
    given: Dict[str, List[Tuple[int, Set[str]]]] = {}
    for line, row in _rows(path):
        if not row or not row[0].strip():
            continue
        if len(row) != 2:
            raise ConfigError(f'{path} line {line}: expected path,label1;label2 '
                              f'but got {len(row)} fields')
        image = row[0].strip()
        if line == 1 and not image_files.has_image_extension(image):
            continue
        labels, key = _row_labels(row[1], path, line), _table_key(image)
        if key is None:
            logging.warning('%s line %d names %s, which lies outside the image directory: rows '
                            'name images by their path relative to it', path, line, image)
            continue
        given.setdefault(key, []).append((line, labels))
    for key, rows in given.items():
        if len({frozenset(labels) for _, labels in rows}) > 1:
            logging.warning('%s gives %s different labels on lines %s: it gets all of them', path,
                            key, ', '.join(str(line) for line, _ in rows))
    return {key: set().union(*(labels for _, labels in rows)) for key, rows in given.items()}


def _rows(path: str) -> Iterable[Tuple[int, List[str]]]:
    """(number of the line it starts on, cells) for each row of the CSV file at `path`.

    Lines end as the csv module reads them (newline=''): CR LF, LF or CR (old Macs), and a
    quoted cell may run over several lines, so rows and lines are counted apart."""
    reader = csv.reader(io.StringIO(fileio.read_text(path, 'labels file'), newline=''))
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ConfigError(f'{path} line {line}: not CSV ({e})') from None
        yield line, row
        line = reader.line_num + 1


def _row_labels(cell: str, path: str, line: int) -> Set[str]:
    """The labels of a `label1;label2` cell. The labels file holds one label a line, so a label
    with a line break in it (a quoted cell spanning lines) is refused."""
    labels = {label.strip() for label in cell.split(';') if label.strip()}
    for label in sorted(labels):
        if label.splitlines() != [label]:
            raise ConfigError(f'{path} line {line}: the label {label!r} holds a line break; a '
                              'label must be one line of the labels file')
    return labels


def _table_key(path: str) -> Optional[str]:
    """The key of the image a table row names (`./a/b.jpg`, `a\\b.jpg` and `a/x/../b.jpg` are
    `a/b.jpg`), or None when the path leaves image_dir (`../b.jpg`, `/photos/b.jpg`, `C:\\b.jpg`).

    Accents are compared composed (NFC): macOS writes names decomposed, tables and other systems
    mostly composed. The image keeps its own name as its split key."""
    normal = posixpath.normpath(path.replace('\\', '/'))
    if normal in ('.', '..') or normal.startswith(('../', '/')) or _DRIVE.match(normal):
        return None
    return unicodedata.normalize('NFC', normal)


def _has_labels(labels: Set[str], image: str, source: str) -> bool:
    if not labels:
        logging.warning('No labels for %s in %s', image, source)
    return bool(labels)


def _all_images(image_dir: str) -> Iterable[str]:
    """The image files below image_dir, relative to it, in sorted folder order."""
    if not image_dir or not image_files.isdir(image_dir):
        raise ToolError(f'image directory not found: {image_dir!r}')
    return image_files.find(image_dir)


def _key(relative: str) -> str:
    """An image's identity as the split hashes it: its relative path, always with `/`."""
    return '/'.join(part for part in relative.replace('\\', '/').split('/') if part)


def _distinct_photos(image_dir: str, key: str,
                     locations: List[str]) -> List[Tuple[str, List[int]]]:
    """(split key, indices into `locations`) of each different photo among the files that share
    `key` (`locations`: relative to image_dir, in sorted folder order). The first photo keeps
    `key`; each other is keyed by its location, so no split moves where names do not clash."""
    photos = _same_photos([os.path.join(image_dir, location) for location in locations])
    return [(key if index == 0 else _key(locations[photo[0]]), photo)
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
