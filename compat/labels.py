"""Labels files: one label per line, in class-index order, as retrain writes them."""
import codecs
from typing import List

import tensorflow as tf

from retrain.errors import RetrainError
from retrain.fileio import failure_reason


def read_labels(path: str) -> List[str]:
    """The labels, read as UTF-8; a label may be blank (classic names of non-ASCII folders).

    UTF-16 with a byte-order mark (Windows "Unicode" text, PowerShell 5's `>`) is read too.
    UTF-16 without one decodes as UTF-8 into labels full of NULs, so NULs are refused.
    """
    if not tf.io.gfile.exists(path):
        raise RetrainError(f'labels file not found: {path}')
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            data = f.read()
    except tf.errors.OpError as e:
        raise RetrainError(f'cannot read labels file {path}: {failure_reason(e, path)}') from None
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    try:
        text = data.decode('utf-16' if utf16 else 'utf-8-sig')
    except UnicodeDecodeError:
        text = '\0' if b'\0' in data else None
    if text is None or '\0' in text:
        hint = (' (it holds NUL characters: UTF-16 without a byte-order mark? Save it as UTF-8)'
                if text else '')
        raise RetrainError(f'labels file is not UTF-8 text: {path}{hint}')
    lines = [line.rstrip('\r') for line in text.split('\n')]
    if lines and not lines[-1]:
        lines.pop()
    return lines


def check_count(labels: List[str], labels_path: str, num_classes, model_path: str) -> None:
    if num_classes and num_classes != len(labels):
        raise RetrainError(f'{labels_path} has {len(labels)} labels but {model_path} outputs '
                           f'{num_classes} classes')
