"""The bottleneck cache: one text file per image, in the classic format, and filling it fast.

A bottleneck is the feature extractor's output for one image. Computing it is the expensive part
of a run, so each is kept in `<bottleneck_dir>/<class dir>/<image name><suffix>.txt` as decimal
floats joined by commas, exactly as the classic scripts wrote them; their caches are reused as-is.
Missing values are computed in batches through a tf.data pipeline that reads, decodes and resizes
in parallel while the model runs; the text files are written on a thread of their own. Files
that are not images are skipped and named once. A binary copy of the cache (cache_index) makes
warm starts fast; it is only used where the text files are unchanged.
"""
import collections
import concurrent.futures
import dataclasses
import os
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain import fileio, image_io
from retrain.cache_index import CacheIndex, stamp
from retrain.config import RetrainConfig
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


def image_batches(paths: Sequence[str], image_size: Tuple[int, int], batch_size: int,
                  allow_truncated: bool = False) -> tf.data.Dataset:
    """(indices, images) batches of the decodable files of `paths`, in roughly that order.

    Reading, decoding and resizing run on tf.data's own threads, a few batches ahead of the
    consumer, so they overlap the model. Files that fail to decode are dropped from the stream;
    the caller finds them as the missing indices. `allow_truncated`: see image_io.decode.
    """
    def load(index, path):
        return index, image_io.decode_and_resize(tf.io.read_file(path), image_size,
                                                 allow_truncated)

    return (tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), list(paths)))
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
            .ignore_errors()
            .batch(batch_size)
            .prefetch(2))


def inference_function(extractor: FeatureExtractor) -> Callable[[tf.Tensor], tf.Tensor]:
    """The extractor frozen (FrozenExtractor: faster), with the same values up to float rounding.

    Models with exotic ops that cannot be frozen run as they are.
    """
    try:
        return extractor.freeze().function
    except Exception as e:  # pylint: disable=broad-except
        logging.info('Running %s unfrozen: %s', extractor.description, e)
        return extractor


def compute_bottlenecks(extractor: FeatureExtractor, paths: Sequence[str],
                        batch_size: int = RetrainConfig.cache_batch_size,
                        progress: Optional[Progress] = None, allow_truncated: bool = False):
    """Yields (index, bottleneck) for each decodable image of `paths`, a batch at a time."""
    function = inference_function(extractor)
    for indices, images in image_batches(paths, extractor.image_size, batch_size,
                                         allow_truncated):
        features = function(images).numpy()
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


def _read_cached(entry: Entry, extractor: FeatureExtractor) -> Optional[np.ndarray]:
    """The entry's cached values, else those of an older cache of the model, reused as-is."""
    values = read_bottleneck(entry.cache, extractor.bottleneck_size)
    stem = entry.cache[:-len(extractor.cache_suffix + '.txt')]
    for suffix in extractor.legacy_cache_suffixes:
        if values is not None:
            break
        values = read_bottleneck(stem + suffix + '.txt', extractor.bottleneck_size)
    return values


def load_or_compute(image_dir: str, classes: List[ImageClass], bottleneck_dir: str,
                    extractor: FeatureExtractor,
                    batch_size: int = RetrainConfig.cache_batch_size,
                    allow_truncated: bool = False) -> Tuple[Bottlenecks, int]:
    """Reads every cached bottleneck, computes and caches the missing ones, drops bad images.

    Unreadable images are logged once each and removed from `classes` (in place). Returns the
    in-memory bottlenecks and the number of images skipped. `allow_truncated`: see image_io.decode.
    """
    entries = _entries(image_dir, classes, bottleneck_dir, extractor.cache_suffix)
    size = extractor.bottleneck_size
    consolidated = CacheIndex(bottleneck_dir, extractor.cache_suffix, size)
    values, stamps = consolidated.lookup([e.cache for e in entries])
    unread = [i for i, v in enumerate(values) if v is None]
    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        read = pool.map(lambda i: _read_cached(entries[i], extractor), unread)
        for i, value in zip(unread, read):
            values[i] = value
    missing = [i for i, v in enumerate(values) if v is None]
    logging.info('%d bottlenecks cached in %s (%d from its index), %d to compute with %s',
                 len(entries) - len(missing), bottleneck_dir, len(entries) - len(unread),
                 len(missing), extractor.description)
    if missing:
        progress = Progress('Caching bottlenecks', len(missing))
        paths = [entries[i].image for i in missing]
        # Formatting and writing the text files happen on a thread of their own, beside the model.
        with concurrent.futures.ThreadPoolExecutor(1) as writer:
            writes: Deque[concurrent.futures.Future] = collections.deque()
            for index, result in compute_bottlenecks(extractor, paths, batch_size, progress,
                                                     allow_truncated):
                values[missing[index]] = result
                writes.append(writer.submit(write_bottleneck, entries[missing[index]].cache,
                                            result))
                while writes and writes[0].done():
                    writes.popleft().result()  # Raises a failed write's error early.
            for write in writes:
                write.result()
        progress.close()
        for i in missing:
            stamps[i] = stamp(entries[i].cache) if values[i] is not None else None
    consolidated.save([e.cache for e in entries], values, stamps)
    skipped = _drop_unreadable(entries, values, classes, allow_truncated)
    return _assemble(entries, values, size), skipped


def _drop_unreadable(entries: List[Entry], values: List[Optional[np.ndarray]],
                     classes: List[ImageClass], allow_truncated: bool) -> int:
    bad = [e for e, v in zip(entries, values) if v is None]
    for entry in bad:
        reason = image_io.describe_decode_error(entry.image, allow_truncated=allow_truncated)
        logging.warning('Skipping %s: %s', entry.image, reason or 'could not be decoded')
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
