"""Labels files: one label per line, in class-index order, as retrain writes them."""
from typing import List

import tensorflow as tf

from retrain.errors import RetrainError


def read_labels(path: str) -> List[str]:
    """The labels, read as UTF-8; a label may be blank (classic names of non-ASCII folders)."""
    if not tf.io.gfile.exists(path):
        raise RetrainError(f'labels file not found: {path}')
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            text = f.read().decode('utf-8-sig')
    except UnicodeDecodeError:
        raise RetrainError(f'labels file is not UTF-8 text: {path}') from None
    lines = [line.rstrip('\r') for line in text.split('\n')]
    if lines and not lines[-1]:
        lines.pop()
    return lines


def check_count(labels: List[str], labels_path: str, num_classes, model_path: str) -> None:
    if num_classes and num_classes != len(labels):
        raise RetrainError(f'{labels_path} has {len(labels)} labels but {model_path} outputs '
                           f'{num_classes} classes')
