"""Finding the images to classify and preparing them in parallel, a batch at a time.

Decoding is the slow part on CPU and TensorFlow's eager image ops release the GIL, so a thread
pool decodes the next batch while the model runs on the current one. Only two batches of
decoded images are held at a time, however large the folder. A file that cannot be read or
decoded becomes an error result; it never stops the others.
"""
import concurrent.futures
import dataclasses
import os
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from compat.classifier import Classifier
from retrain.errors import error_summary

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp')


@dataclasses.dataclass
class Result:
    path: str
    scores: Optional[np.ndarray] = None
    error: str = ''


def find_images(arguments: Sequence[str]) -> Iterator[Tuple[str, str]]:
    """(path, error) for each file named and each image file under each folder named, in order.

    Files named explicitly are tried whatever their extension; folders are walked recursively in
    sorted order for files with image extensions.
    """
    for argument in arguments:
        if tf.io.gfile.isdir(argument):
            found = sorted(os.path.join(folder, name)
                           for folder, _, names in tf.io.gfile.walk(argument)
                           for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                yield argument, 'no image files in this folder'
            yield from ((path, '') for path in found)
        elif tf.io.gfile.exists(argument):
            yield argument, ''
        else:
            yield argument, 'no such file or folder'


def classify_all(classifier: Classifier, images: Sequence[Tuple[str, str]],
                 batch_size: int) -> Iterator[Result]:
    """Results in the order of `images`, computed in batches while the next batch decodes."""
    workers = max(2, os.cpu_count() or 1)
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
             error: str) -> Tuple[str, Union[np.ndarray, bytes, None], str]:
    if error:
        return path, None, error
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            contents = f.read()
    except (tf.errors.OpError, OSError) as e:
        return path, None, f'cannot read file ({error_summary(e)})'
    if not contents:
        return path, None, 'empty file'
    try:
        return path, classifier.prepare(contents), ''
    except tf.errors.OpError as e:
        return path, None, error_summary(e)


def _classify_batch(classifier: Classifier, prepared) -> List[Result]:
    good = [item for _, item, error in prepared if not error]
    if good:
        scores = iter(classifier.classify(good if classifier.takes_encoded else np.stack(good)))
    return [Result(path, error=error) if error else Result(path, next(scores))
            for path, _, error in prepared]
