"""Finding the images to classify and preparing them in parallel, a batch at a time.

Decoding is the slow part on CPU, so it runs ahead of the model: for models that take decoded
images through retrain's tf.data pipeline (the one that fills the bottleneck cache: C++ threads,
no Python per image), for the old graphs that take encoded bytes one at a time through a thread
pool. Only a few batches are held at a time, however large the folder. A file that cannot be
read or decoded, or that the model returns NaN or infinite scores for, becomes an error result;
it never stops the others.
"""
import concurrent.futures
import dataclasses
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from compat.classifier import Classifier
from retrain.common.places import is_local
from retrain.data import image_files, image_io
from retrain.data.image_lists import path_bytes


@dataclasses.dataclass
class Result:
    path: str
    scores: Optional[np.ndarray] = None
    error: str = ''
    unknown_score: Optional[float] = None  # Where the model carries the judgement.


def find_images(arguments: Sequence[str]) -> Iterator[Tuple[str, str]]:
    """(path, error) for each file named and each image file under each folder named, in order.

    Files named explicitly are tried whatever their name; in folders, the files retrain would
    train on (image_files: extensions, hidden files), searched recursively in sorted order,
    following folder links, each image reported once however many links lead to it.
    """
    for argument in arguments:
        if image_files.isdir(argument):
            found = _images_below(argument)
            if not found:
                yield argument, 'no image files in this folder'
            yield from ((path, '') for path in found)
        elif image_files.exists(argument):
            yield argument, '' if image_files.is_regular(argument) else _NOT_REGULAR
        else:
            yield argument, _missing(argument)


# Read to its end, a device never ends (/dev/zero filled 11 GB in 16 s) and a pipe may never
# send: neither is read (in folders, image_files does not list them).
_NOT_REGULAR = 'not a regular file (a device, a pipe or a socket): not read'


def _missing(path: str) -> str:
    """Why `path` is neither a file nor a folder: a local link says where it fails (a loop of
    links is not a missing file)."""
    if is_local(path) and os.path.islink(path):
        try:
            os.stat(path)
        except OSError as e:
            return f'a link that leads nowhere: {e.strerror}'
    return 'no such file or folder'


def _images_below(top: str) -> List[str]:
    """The images below folder `top`, as paths, sorted; one path per local file."""
    paths = [os.path.join(top, relative)
             for relative in image_files.find(top, follow_folder_links=True)]
    return _once_each(paths) if is_local(top) else sorted(paths)


def _once_each(paths: List[str]) -> List[str]:
    """`paths` sorted, one per file: where links lead to a file, the path that is no link."""
    chosen: Dict[str, str] = {}
    for path in sorted(paths, key=lambda p: (os.path.islink(p), p)):
        chosen.setdefault(os.path.realpath(path), path)
    return sorted(chosen.values())


def classify_all(classifier: Classifier, images: Sequence[Tuple[str, str]],
                 batch_size: int) -> Iterator[Result]:
    """Results in the order of `images` ((path, error) pairs), a batch at a time."""
    if classifier.takes_encoded:
        return _classify_encoded(classifier, images, batch_size)
    return _classify_decoded(classifier, images, batch_size)


def _classify_decoded(classifier: Classifier, images: Sequence[Tuple[str, str]],
                      batch_size: int) -> Iterator[Result]:
    readable = [i for i, (_, error) in enumerate(images) if not error]
    done = 0  # images[:done] have their results out.
    for indices, batch, _ in image_io.image_batches([images[i][0] for i in readable],
                                                 classifier.spec.size, batch_size, ordered=True):
        positions = [readable[i] for i in indices.numpy()]
        scores, judged = classifier.classify_judged(batch)
        for index, position in enumerate(positions):
            yield from _failures(images[done:position])  # Dropped by the pipeline: unusable.
            yield _scored(images[position][0], scores[index], _at(judged, index))
            done = position + 1
    yield from _failures(images[done:])


def _failures(images: Sequence[Tuple[str, str]]) -> Iterator[Result]:
    for path, error in images:
        yield Result(path, error=error or _reason(path))


def _reason(path: str) -> str:
    return image_io.describe_decode_error(path) or 'could not be decoded'


def _classify_encoded(classifier: Classifier, images: Sequence[Tuple[str, str]],
                      batch_size: int) -> Iterator[Result]:
    """Bytes read and checked by a thread pool while the model runs on the batch before."""
    workers = max(2, image_io.max_in_flight())  # Each may hold a decoded image.
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
        pending = _submit(pool, classifier, batches[0]) if batches else []
        for index in range(len(batches)):
            prepared = [future.result() for future in pending]
            if index + 1 < len(batches):
                pending = _submit(pool, classifier, batches[index + 1])
            yield from _classify_batch(classifier, prepared)


def _submit(pool, classifier: Classifier, batch: Sequence[Tuple[str, str]]) -> List:
    return [pool.submit(_prepare, classifier, path, error) for path, error in batch]


def _prepare(classifier: Classifier, path: str,
             error: str) -> Tuple[str, Optional[bytes], str]:
    if error:
        return path, None, error
    try:
        with tf.io.gfile.GFile(path_bytes(path), 'rb') as f:
            return path, classifier.prepare(f.read()), ''
    except (tf.errors.OpError, OSError):
        return path, None, _reason(path)


def _classify_batch(classifier: Classifier, prepared) -> List[Result]:
    good = [item for _, item, error in prepared if not error]
    scores, judged = classifier.classify_judged(good) if good else (None, None)
    results, index = [], 0
    for path, _, error in prepared:
        if error:
            results.append(Result(path, error=error))
        else:
            results.append(_scored(path, scores[index], _at(judged, index)))
            index += 1
    return results


def _scored(path: str, scores: np.ndarray, unknown_score: Optional[float]) -> Result:
    """The image's result; a failure where the model returned NaN or infinite scores (a broken
    layer, say): such scores rank nothing, and in JSON they would be `NaN` or `Infinity`, which
    strict parsers refuse."""
    judged = () if unknown_score is None else (unknown_score,)
    if not (np.isfinite(scores).all() and np.isfinite(judged).all()):
        return Result(path, error='the model returned NaN or infinite scores')
    return Result(path, scores, unknown_score=unknown_score)


def _at(judged: Optional[np.ndarray], index: int) -> Optional[float]:
    return None if judged is None else float(judged[index])
