"""The bottleneck cache: one text file per image, in the classic format, and filling it fast.

A bottleneck is the feature extractor's output for one image. Computing it is the expensive part
of a run, so each is kept in `<bottleneck_dir>/<class dir>/<image name><suffix>.txt` as decimal
floats joined by commas, exactly as the classic scripts wrote them; their caches are reused as-is.
Missing values are computed in batches through a tf.data pipeline that reads, decodes and resizes
in parallel while the model runs. Files that are not images are skipped and named once.
"""
import concurrent.futures
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain import fileio, image_io
from retrain.errors import RetrainError
from retrain.extractors import FeatureExtractor
from retrain.image_lists import CATEGORIES, ImageClass, image_path
from retrain.progress import Progress

READ_THREADS = 16


def bottleneck_path(bottleneck_dir: str, image_class: ImageClass, relative: str,
                    suffix: str) -> str:
    return os.path.join(bottleneck_dir, image_class.dir_name, relative) + suffix + '.txt'


def format_values(values: np.ndarray) -> str:
    """The classic text form: each float32's shortest round-trip decimal, joined by commas."""
    return ','.join(str(v) for v in np.asarray(values, dtype=np.float32))


def parse_values(text: str, size: int) -> Optional[np.ndarray]:
    """The values of a cache file's text, or None when it is damaged or of another size."""
    try:
        values = np.array(text.split(','), dtype=np.float32)
    except ValueError:
        return None
    return values if values.shape == (size,) else None


def read_bottleneck(path: str, size: int) -> Optional[np.ndarray]:
    try:
        with tf.io.gfile.GFile(path, 'r') as f:
            return parse_values(f.read(), size)
    except (tf.errors.NotFoundError, UnicodeDecodeError):
        return None


def write_bottleneck(path: str, values: np.ndarray) -> None:
    fileio.atomic_write(path, format_values(values))


@dataclasses.dataclass
class Entry:
    """One image: where it is, where its bottleneck lives, and its class and split."""
    image: str
    cache: str
    class_index: int
    category: str
    relative: str


@dataclasses.dataclass
class Bottlenecks:
    """All bottlenecks of a run, in memory, per split: features [n, D], labels [n], image paths."""
    features: Dict[str, np.ndarray]
    labels: Dict[str, np.ndarray]
    paths: Dict[str, List[str]]


def compute_bottlenecks(extractor: FeatureExtractor, paths: Sequence[str], batch_size: int = 64,
                        progress: Optional[Progress] = None):
    """Yields (index, bottleneck) for each decodable image of `paths`, in batches.

    Reading, decoding and resizing run in parallel in tf.data and overlap the model. Files that
    fail to decode are dropped from the stream; the caller finds them as the missing indices.
    """
    size = extractor.image_size

    def load(index, path):
        return index, image_io.decode_and_resize(tf.io.read_file(path), size)

    dataset = (tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), list(paths)))
               .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
               .ignore_errors()
               .batch(batch_size)
               .prefetch(2))
    for indices, images in dataset:
        features = extractor(images).numpy()
        for index, values in zip(indices.numpy(), features):
            yield int(index), values
        if progress:
            progress.update(len(features))


def _entries(image_dir: str, classes: Sequence[ImageClass], bottleneck_dir: str,
             suffix: str) -> List[Entry]:
    return [Entry(image_path(image_dir, c, rel), bottleneck_path(bottleneck_dir, c, rel, suffix),
                  index, category, rel)
            for index, c in enumerate(classes) for category in CATEGORIES
            for rel in c.images(category)]


def load_or_compute(image_dir: str, classes: List[ImageClass], bottleneck_dir: str,
                    extractor: FeatureExtractor, batch_size: int = 64) -> Tuple[Bottlenecks, int]:
    """Reads every cached bottleneck, computes and caches the missing ones, drops bad images.

    Unreadable images are logged once each and removed from `classes` (in place). Returns the
    in-memory bottlenecks and the number of images skipped.
    """
    entries = _entries(image_dir, classes, bottleneck_dir, extractor.cache_suffix)
    size = extractor.bottleneck_size
    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        values: List[Optional[np.ndarray]] = list(
            pool.map(lambda e: read_bottleneck(e.cache, size), entries))
    missing = [i for i, v in enumerate(values) if v is None]
    logging.info('%d bottlenecks cached in %s, %d to compute with %s', len(entries) - len(missing),
                 bottleneck_dir, len(missing), extractor.description)
    if missing:
        progress = Progress('Caching bottlenecks', len(missing))
        paths = [entries[i].image for i in missing]
        for index, result in compute_bottlenecks(extractor, paths, batch_size, progress):
            entry = entries[missing[index]]
            try:
                write_bottleneck(entry.cache, result)
            except tf.errors.OpError as e:
                raise RetrainError(f'cannot write bottleneck file {entry.cache}: '
                                   f'{image_io.error_summary(e)}') from None
            values[missing[index]] = result
        progress.close()
    skipped = _drop_unreadable(entries, values, classes)
    return _assemble(entries, values, size), skipped


def _drop_unreadable(entries: List[Entry], values: List[Optional[np.ndarray]],
                     classes: List[ImageClass]) -> int:
    bad = [e for e, v in zip(entries, values) if v is None]
    for entry in bad:
        logging.warning('Skipping %s: %s', entry.image,
                        image_io.describe_decode_error(entry.image) or 'could not be decoded')
        classes[entry.class_index].images(entry.category).remove(entry.relative)
    if bad:
        logging.warning('Skipped %d unreadable image(s) of %d', len(bad), len(entries))
    for image_class in classes:
        if not image_class.count():
            raise RetrainError(f'class folder {image_class.dir_name!r} has no readable images')
    return len(bad)


def _assemble(entries: List[Entry], values: List[Optional[np.ndarray]], size: int) -> Bottlenecks:
    features, labels, paths = {}, {}, {}
    for category in CATEGORIES:
        chosen = [(e, v) for e, v in zip(entries, values) if v is not None and e.category == category]
        features[category] = (np.stack([v for _, v in chosen]) if chosen
                              else np.zeros((0, size), np.float32))
        labels[category] = np.array([e.class_index for e, _ in chosen], np.int64)
        paths[category] = [e.image for e, _ in chosen]
    return Bottlenecks(features, labels, paths)
