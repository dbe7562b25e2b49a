"""The bottleneck cache: one text file per image, in the classic format, and filling it fast.

A bottleneck is the feature extractor's output for one image. Computing it is the expensive part
of a run, so each is kept in `<bottleneck_dir>/<class dir>/<image name><suffix>.txt` as decimal
floats joined by commas, exactly as the classic scripts wrote them; their caches are reused as-is.
Missing values are computed in batches through a tf.data pipeline that reads, decodes and resizes
in parallel while the model runs; the text files are written on a thread of their own. Files
that are not images are skipped and named once. A binary copy of the cache (cache_index) makes
warm starts fast; it is only used where the text files are unchanged. An image replaced under
its name since it was cached (its size changed: see binary_index) is computed again.

An image whose classic cache file name no file system takes (longer than MAX_NAME_BYTES, or not
valid UTF-8) is cached as `<start of its name>~<16 hex of a hash of the name><suffix>.txt`, the
same on every run and machine; class and sub-folders not valid UTF-8 get the same treatment.
"""
import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import os
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache.binary_index import CacheIndex, Stamp, stamp
from retrain.common import fileio
from retrain.common.errors import ToolError
from retrain.common.logs import Progress
from retrain.common.places import is_local
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.data.examples import Example
from retrain.data.image_lists import CATEGORIES, path_bytes
from retrain.features.extractors import FeatureExtractor

READ_THREADS = 16
_NAME_LIMIT = 255  # Bytes in a file or folder name, on the common file systems.
# The longest cache file name written as it is: room is left for the temporary name it is written
# under first (fileio.temp_name: `.tmp-<12 hex>.<name>`). Folders are made directly.
MAX_NAME_BYTES = _NAME_LIMIT - len('..tmp-') - 12


def _utf8_length(name: str) -> Optional[int]:
    """The length of `name` in UTF-8; None for names with undecodable bytes (surrogates)."""
    try:
        return len(name.encode('utf-8'))
    except UnicodeEncodeError:
        return None


def _fits(name: str, limit: int) -> bool:
    if name.isascii():  # Most names: checked without encoding them.
        return len(name) <= limit
    length = _utf8_length(name)
    return length is not None and length <= limit


def _fit(name: str, tail: str, limit: int) -> str:
    """`name + tail`, or when that is too long or not valid UTF-8, the start of `name` (undecodable
    bytes as `_`), `~`, 16 hex digits of a hash of `name`'s bytes, and `tail`."""
    if _fits(name + tail, limit):
        return name + tail
    tail = f'~{hashlib.sha1(path_bytes(name)).hexdigest()[:16]}{tail}'
    room = limit - len(tail.encode('utf-8'))
    if room < 0:
        raise ToolError(f'cache file names ending in {tail[17:]!r} would be longer than '
                        f'{limit} bytes: use a shorter module path or handle')
    readable = ''.join('_' if '\ud800' <= c <= '\udfff' else c for c in name)
    return readable.encode('utf-8')[:room].decode('utf-8', 'ignore') + tail


def bottleneck_path(bottleneck_dir: str, location: str, suffix: str) -> str:
    """`<bottleneck_dir>/<class dir>/<image name><suffix>.txt` for the image at `location` below
    the image folder, with names no file system takes shortened (see the module docstring)."""
    *folders, name = location.split(os.sep)
    folders = [_fit_folder(folder) for folder in folders]
    return os.path.join(bottleneck_dir, *folders, _fit(name, suffix + '.txt', MAX_NAME_BYTES))


@functools.lru_cache(maxsize=4096)  # A few folders hold many images.
def _fit_folder(name: str) -> str:
    return _fit(name, '', _NAME_LIMIT)


def cache_files(bottleneck_dir: str, location: str, extractor: FeatureExtractor) -> List[str]:
    """Where an image's values may be, the first found used: its own file, then older caches of
    the model (read as they are): other generations' suffixes, and classic names that are now
    shortened but fit; last, with extractor.scaled_jpegs, its file of scaled values."""
    found = []
    for suffix in (extractor.cache_suffix, *extractor.legacy_cache_suffixes):
        path = bottleneck_path(bottleneck_dir, location, suffix)
        classic = os.path.join(bottleneck_dir, location) + suffix + '.txt'
        usable = _utf8_length(classic) is not None and _fits(os.path.basename(classic), _NAME_LIMIT)
        found += [path] + ([classic] if classic != path and usable else [])
    scaled = scaled_file(bottleneck_dir, location, extractor)
    return found + ([scaled] if scaled else [])


def scaled_file(bottleneck_dir: str, location: str, extractor: FeatureExtractor) -> str:
    """The image's cache file of values from a JPEG decoded scaled down; '' without
    extractor.scaled_jpegs. Values are written there, rather than to its own file, only for an
    image decoded scaled down whose own file does not exist (docs/COMPATIBILITY.md section 4)."""
    return (bottleneck_path(bottleneck_dir, location, extractor.scaled_suffix)
            if extractor.scaled_jpegs else '')


@tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)], autograph=False)
def _format_rows(features: tf.Tensor) -> tf.Tensor:
    return tf.strings.reduce_join(tf.strings.as_string(features, precision=9, shortest=True),
                                  axis=1, separator=',')


def format_batch(features: np.ndarray) -> List[bytes]:
    """The classic text of each row of float32 [N, D]: decimal floats joined by commas.

    Nine significant digits (printf `%.9g`) give back every float32 exactly. Formatted by
    TensorFlow in C++, off the GIL: a quarter of the CPU time of Python's `str` on each value,
    which took a tenth of the machine while caching (bench/bench.py).
    """
    return list(_format_rows(np.asarray(features, np.float32)).numpy())


def format_values(values: np.ndarray) -> str:
    """One bottleneck in the classic text form (see format_batch)."""
    return format_batch(np.asarray(values)[np.newaxis])[0].decode('ascii')


def parse_values(text: str, size: int) -> Optional[np.ndarray]:
    """The values of a cache file's text, or None when it is damaged (it does not parse, or holds
    a nan or an infinity, which would make training diverge; 1e39 becomes one, without NumPy's
    overflow warning) or of another size."""
    try:
        with np.errstate(over='ignore'):  # Thread-local, unlike the warnings filters.
            values = np.array(text.split(','), dtype=np.float32)
    except ValueError:
        return None
    return values if values.shape == (size,) and np.isfinite(values).all() else None


def read_bottleneck(path: str, size: int) -> Optional[np.ndarray]:
    """The values cached in `path`; None when it is missing or damaged (then it is recomputed).

    A cache file that is there but cannot be read (a folder, no permission) is a ToolError:
    writing a new one in its place would fail too, or replace what is not ours to replace.
    """
    try:
        with tf.io.gfile.GFile(path, 'r') as f:
            return parse_values(f.read(), size)
    except (tf.errors.NotFoundError, UnicodeDecodeError):
        return None
    except tf.errors.OpError as e:
        raise ToolError(f'cannot read the cached bottleneck {path}: '
                        f'{fileio.failure_reason(e, path)}') from None


def write_bottlenecks(paths: Sequence[str], features: np.ndarray) -> None:
    """Writes each row of `features` [N, D] as the cache file at the same place in `paths`."""
    for path, text in zip(paths, format_batch(features)):
        fileio.atomic_write(path, text)


def write_bottleneck(path: str, values: np.ndarray) -> None:
    write_bottlenecks([path], np.asarray(values)[np.newaxis])


@dataclasses.dataclass
class Skipped:
    """An image the run could not use, and why (logged, and listed in the run report)."""
    path: str
    reason: str


@dataclasses.dataclass
class Bottlenecks:
    """All bottlenecks of a run, in memory, per split: features [n, D], labels (class indices
    [n], or label rows [n, labels]) and image paths."""
    features: Dict[str, np.ndarray]
    labels: Dict[str, np.ndarray]
    paths: Dict[str, List[str]]


def inference_function(extractor: FeatureExtractor) -> Callable[[tf.Tensor], tf.Tensor]:
    """The extractor frozen (FrozenExtractor: faster), with the same values up to float rounding.

    Every export needs the frozen model too, so a model that cannot be frozen is refused before
    caching (export.check_exportable) rather than cached unfrozen.
    """
    return extractor.freeze().function


def compute_bottlenecks(extractor: FeatureExtractor, paths: Sequence[str],
                        batch_size: int = RetrainConfig.cache_batch_size,
                        progress: Optional[Progress] = None, allow_truncated: bool = False,
                        scaling: Optional[Sequence[bool]] = None):
    """Yields (indices [B], bottlenecks [B, D], scaled [B]) batches for the decodable images of
    `paths`; `scaled` says which were decoded scaled down (image_io.image_batches). Large JPEGs
    are decoded scaled down where `scaling` says so (by default: extractor.scaled_jpegs)."""
    function = inference_function(extractor)
    if scaling is None:
        scaling = [extractor.scaled_jpegs] * len(paths)
    for indices, images, scaled in image_io.image_batches(paths, extractor.image_size, batch_size,
                                                          allow_truncated, scaled_jpegs=scaling):
        features = function(images).numpy()
        yield indices.numpy(), features, scaled.numpy()
        if progress:
            progress.update(len(features))


def _existing(folders: Set[str]) -> Set[str]:
    """The paths of the files in `folders`: one listing each instead of a failed open a file.

    Local folders are listed by os: gfile fails on names that are not valid UTF-8."""
    found = set()
    for folder in folders:
        try:
            names = os.listdir(folder) if is_local(folder) else tf.io.gfile.listdir(folder)
        except (OSError, tf.errors.NotFoundError):
            continue
        found.update(os.path.join(folder, name) for name in names)
    return found


def _image_size(path: str) -> Optional[int]:
    """The size in bytes of a local image; None for a remote one (not worth a request each) or
    one that is not there (decoding it says so)."""
    if not is_local(path):
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _read_cached(candidates: Sequence[str], size: int
                 ) -> Tuple[Optional[str], Stamp, Optional[np.ndarray]]:
    """The first of `candidates` that holds valid values: its path, its stamp taken before it
    was read, and the values; (None, None, None) if none does."""
    for path in candidates:
        before = stamp(path)
        values = read_bottleneck(path, size)
        if values is not None:
            return path, before, values
        logging.warning('Invalid float found, recreating bottleneck %s', path)  # Classic words.
    return None, None, None


def load_or_compute(image_dir: str, examples: List[Example], bottleneck_dir: str,
                    extractor: FeatureExtractor,
                    batch_size: int = RetrainConfig.cache_batch_size,
                    allow_truncated: bool = False) -> Tuple[Bottlenecks, List[Skipped]]:
    """Reads every cached bottleneck, computes and caches the missing ones, drops bad images.

    `examples` come split by split (data.examples.in_cache_order). Returns the in-memory
    bottlenecks of the usable ones and the images skipped, each logged once with its reason.
    `allow_truncated`: see image_io.decode. With extractor.scaled_jpegs, an image's own file
    (classic values) is used before its scaled one, and is always rewritten with classic values.
    """
    images = [e.image(image_dir) for e in examples]
    caches = [bottleneck_path(bottleneck_dir, e.location, extractor.cache_suffix)
              for e in examples]
    scaled_caches = [scaled_file(bottleneck_dir, e.location, extractor) for e in examples]
    size = extractor.bottleneck_size
    consolidated = CacheIndex(bottleneck_dir, extractor.cache_suffix, size)
    # Only an index records them (a local bottleneck dir): else no stat is worth its time.
    image_sizes = ([_image_size(image) for image in images] if consolidated.enabled
                   else [None] * len(images))
    # The file holding each image's values: its own, unless the index holds only the scaled one.
    held = [scaled if scaled and consolidated.holds(scaled) and not consolidated.holds(own)
            else own for own, scaled in zip(caches, scaled_caches)]
    values, stamps, replaced = consolidated.lookup(held, image_sizes)
    if any(replaced):
        logging.warning('%d image(s) changed since their bottlenecks were cached (replaced under '
                        'the same name, e.g. %s): computing them again', sum(replaced),
                        images[replaced.index(True)])
    served = len({cache for cache, v in zip(held, values) if v is not None})
    unread = [i for i, v in enumerate(values) if v is None and not replaced[i]]
    candidates = {i: cache_files(bottleneck_dir, examples[i].location, extractor) for i in unread}
    existing = _existing({os.path.dirname(path) for paths in candidates.values()
                          for path in paths})
    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        read = pool.map(lambda i: _read_cached([p for p in candidates[i] if p in existing], size),
                        unread)
        for i, (path, taken, value) in zip(unread, read):
            values[i] = value
            if path in (caches[i], scaled_caches[i]):
                held[i], stamps[i] = path, taken
    # An image listed twice (make_image_classifier's splits overlap) is computed once.
    first: Dict[str, int] = {}
    twins = {i: first.setdefault(cache, i) for i, cache in enumerate(caches)}
    missing = [i for i, v in enumerate(values) if v is None and twins[i] == i]
    logging.info('%d bottlenecks cached in %s (%d from its index), %d to compute with %s',
                 len(first) - len(missing), bottleneck_dir, served, len(missing),
                 extractor.description)
    nonfinite: Set[int] = set()  # Images the model gives nan or inf for: never cached nor used.
    if missing:
        # Where its own file is there (damaged, or its image replaced), it gets classic values.
        scaling = [bool(scaled_caches[i]) and caches[i] not in existing
                   and not (replaced[i] and held[i] == caches[i]) for i in missing]
        targets = [(caches[i], scaled_caches[i] if scale else caches[i])
                   for i, scale in zip(missing, scaling)]
        computed = _compute_and_write(extractor, [images[i] for i in missing], targets,
                                      batch_size, allow_truncated)
        for k, (value, path) in computed.items():
            i = missing[k]
            if value is None:
                nonfinite.add(i)
            else:
                values[i], held[i], stamps[i] = value, path, stamp(path)
        for i, j in twins.items():
            if values[i] is None and j != i:
                values[i], stamps[i], held[i] = values[j], stamps[j], held[j]
    consolidated.save(held, values, stamps, image_sizes)
    skipped = _skipped(images, values, allow_truncated, nonfinite)
    return _assemble(examples, images, values, size, consolidated), skipped


def _compute_and_write(extractor: FeatureExtractor, images: Sequence[str],
                       targets: Sequence[Tuple[str, str]], batch_size: int, allow_truncated: bool
                       ) -> Dict[int, Tuple[Optional[np.ndarray], str]]:
    """Computes the bottlenecks of `images` and writes each to one of its `targets`: the file
    for values decoded at full scale, or the one for values decoded scaled down (the same file
    where it must not be). Returns, by index, each computed one and its file; None values where
    the model gives nan or inf (not written). Images that do not decode are left out."""
    computed: Dict[int, Tuple[Optional[np.ndarray], str]] = {}
    progress = Progress('Caching bottlenecks', len(images))
    scaled_count = 0
    # Formatting and writing the text files happen on a thread of their own, beside the model.
    with concurrent.futures.ThreadPoolExecutor(1) as writer:
        writes: Deque[concurrent.futures.Future] = collections.deque()
        for indices, features, scaled in compute_bottlenecks(
                extractor, images, batch_size, progress, allow_truncated,
                [full != smaller for full, smaller in targets]):
            finite = np.isfinite(features).all(axis=1)
            computed.update((k, (None, '')) for k in indices[~finite])
            paths = [targets[k][int(bool(smaller))] for k, smaller in zip(indices, scaled)]
            for k, value, path, ok in zip(indices, features, paths, finite):
                if ok:
                    computed[k] = value, path
                    scaled_count += path != targets[k][0]
            writes.append(writer.submit(write_bottlenecks, [p for p, ok in zip(paths, finite)
                                                            if ok], features[finite]))
            while writes and writes[0].done():
                writes.popleft().result()  # Raises a failed write's error early.
        for write in writes:
            write.result()
    progress.close()
    if scaled_count:
        logging.info('%d large JPEG(s) were decoded scaled down, which is faster; their values are '
                     'cached as *%s.txt (--nofast_jpeg_decoding decodes them at full scale, as '
                     'the classic scripts did)', scaled_count, extractor.scaled_suffix)
    return computed


def _skipped(images: List[str], values: List[Optional[np.ndarray]], allow_truncated: bool,
             nonfinite: Set[int]) -> List[Skipped]:
    """The images without values (each once, though listed twice), each logged with the
    reason, and their count."""
    skipped = []
    distinct = dict.fromkeys(images)
    for i, (image, value) in enumerate(zip(images, values)):
        if value is None and distinct[image] is None:
            reason = ('the model gives non-finite values for it' if i in nonfinite else
                      image_io.describe_decode_error(image, allow_truncated=allow_truncated))
            distinct[image] = Skipped(image, reason or 'could not be decoded')
            skipped.append(distinct[image])
            logging.warning('Skipping %s: %s', image, skipped[-1].reason)
    if skipped:
        logging.warning('Skipped %d unreadable image(s) of %d', len(skipped), len(distinct))
    return skipped


def _assemble(examples: List[Example], images: List[str], values: List[Optional[np.ndarray]],
              size: int, consolidated: CacheIndex) -> Bottlenecks:
    """The bottlenecks of each split; a split served whole from the index is a view of its
    memory-mapped array, so a warm run on a large cache holds it once, not twice."""
    features, labels, paths = {}, {}, {}
    for category in CATEGORIES:
        chosen = [i for i, (e, v) in enumerate(zip(examples, values))
                  if v is not None and e.split == category]
        rows = [values[i] for i in chosen]
        mapped = consolidated.rows_as_slice(rows)
        features[category] = (mapped if mapped is not None else np.stack(rows) if rows
                              else np.zeros((0, size), np.float32))
        labels[category] = _labels([examples[i].label for i in chosen], examples)
        paths[category] = [images[i] for i in chosen]
    return Bottlenecks(features, labels, paths)


def _labels(chosen: List[Union[int, np.ndarray]], examples: List[Example]) -> np.ndarray:
    """Class indices [n] int64, or label rows [n, labels] float32, as the examples hold them."""
    if examples and isinstance(examples[0].label, np.ndarray):
        return (np.stack(chosen) if chosen
                else np.zeros((0, len(examples[0].label)), np.float32))
    return np.array(chosen, np.int64)
