"""Labels files: one label per line, in class-index order, as retrain writes them."""
from typing import List

from retrain.common.errors import ToolError
from retrain.common.fileio import read_text


def read_labels(path: str) -> List[str]:
    """The labels, one a line; a label may be blank (classic names of non-ASCII folders).
    Encodings as fileio.read_text takes them: UTF-8, or UTF-16 with a byte-order mark."""
    lines = [line.rstrip('\r') for line in read_text(path, 'labels file').split('\n')]
    if lines and not lines[-1]:
        lines.pop()
    return lines


def check_count(labels: List[str], labels_path: str, num_classes, model_path: str) -> None:
    if num_classes and num_classes != len(labels):
        raise ToolError(f'{labels_path} has {len(labels)} labels but {model_path} outputs '
                        f'{num_classes} classes')
