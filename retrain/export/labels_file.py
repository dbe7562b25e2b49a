"""The labels file (--output_labels): one label per line, in the order of the graph's scores.

label_image and old client code read it beside the graph; retrain.common.fileio writes it whole
or not at all.
"""
from typing import Sequence

from retrain.common import fileio
from retrain.export.outputs import Trained


def write_labels(path: str, labels: Sequence[str]) -> None:
    fileio.atomic_write(path, ''.join(label + '\n' for label in labels))


def write_output(path: str, trained: Trained) -> None:
    write_labels(path, trained.labels)


def wrote_line(path: str, trained: Trained) -> str:
    return f'Wrote labels to {path}'
