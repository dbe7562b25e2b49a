"""TensorBoard extras written once at the end of a run: how the classes are confused.

Training writes the classic scalars and histograms as it goes (runs `train` and `validation`).
At the end this adds, in run `test`, the final test accuracy, the accuracy of each class, the
confusion matrix (as an image and as a labelled table) and, in run `train`, the graph of the new
layer, so runs can be compared class by class in TensorBoard.
"""
import os
import re
from typing import List

import numpy as np
import tensorflow as tf

from retrain.common.errors import ToolError, error_summary
from retrain.export import frozen_graph
from retrain.train.heads import Head
from retrain.train.tensorboard_steps import EVENT_FILE_PREFIX, summaries_written

# Pixels per confusion-matrix cell side; large matrices get smaller cells, never below 4.
_CELL = 32
_IMAGE_SIDE = 512


def confusion_matrix(truth: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: how many images of class i were predicted as class j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (truth, predictions), 1)
    return counts


def confusion_image(counts: np.ndarray) -> np.ndarray:
    """uint8 [1, S, S, 3]: one square per cell, from white (none) to dark blue (the whole row).

    Rows are normalized, so a class with few images shows its mistakes as clearly as a big one.
    """
    rows = counts.sum(axis=1, keepdims=True)
    share = counts / np.maximum(rows, 1)
    cell = max(4, min(_CELL, _IMAGE_SIDE // max(len(counts), 1)))
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    colours = white + share[..., np.newaxis] * (blue - white)
    image = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
    image[::cell, :], image[:, ::cell] = 200.0, 200.0  # Grid lines between cells.
    return image.round().astype(np.uint8)[np.newaxis]


def confusion_table(counts: np.ndarray, labels: List[str]) -> str:
    """A Markdown table (TensorBoard renders it): rows are true classes, columns predictions."""
    header = '| true \\ predicted | ' + ' | '.join(labels) + ' |'
    rule = '|---' * (len(labels) + 1) + '|'
    lines = [f'| {label} | ' + ' | '.join(str(n) for n in row) + ' |'
             for label, row in zip(labels, counts)]
    return '\n'.join([header, rule] + lines)


def _tag(label: str) -> str:
    return re.sub(r'[^\w.\-/]+', '_', label, flags=re.UNICODE) or '_'


def clear_earlier_runs(summaries_dir: str) -> None:
    """Classic behaviour: the summaries of earlier runs in that folder are cleared. Only the event
    files of the runs this tool writes (train, validation, test) go; anything else stays."""
    if not summaries_dir:
        return
    try:
        for run in ('train', 'validation', 'test'):
            folder = os.path.join(summaries_dir, run)
            if not tf.io.gfile.isdir(folder):
                continue
            for name in tf.io.gfile.listdir(folder):
                path = os.path.join(folder, name)
                if name.startswith(EVENT_FILE_PREFIX) and not tf.io.gfile.isdir(path):
                    tf.io.gfile.remove(path)
            if not tf.io.gfile.listdir(folder):
                tf.io.gfile.rmtree(folder)
        tf.io.gfile.makedirs(summaries_dir)
    except (tf.errors.OpError, OSError) as e:
        raise ToolError(f'cannot clear the earlier summaries in {summaries_dir}: '
                        f'{error_summary(e)}') from None


def write_final(summaries_dir: str, labels: List[str], truth: np.ndarray,
                predictions: np.ndarray, head: Head, final_tensor_name: str, step: int) -> None:
    """Writes the end-of-run summaries (see module doc); nothing when summaries_dir is empty."""
    if not summaries_dir:
        return
    with summaries_written(summaries_dir):
        _write_final(summaries_dir, labels, truth, predictions, head, final_tensor_name, step)


def _write_final(summaries_dir: str, labels: List[str], truth: np.ndarray,
                 predictions: np.ndarray, head: Head, final_tensor_name: str, step: int) -> None:
    train_writer = tf.summary.create_file_writer(os.path.join(summaries_dir, 'train'))
    with train_writer.as_default(step=step):
        tf.summary.graph(frozen_graph.final_layer_graph(head, final_tensor_name))
    train_writer.close()
    if not len(truth):
        return
    counts = confusion_matrix(truth, predictions, len(labels))
    test_writer = tf.summary.create_file_writer(os.path.join(summaries_dir, 'test'))
    with test_writer.as_default(step=step):
        tf.summary.scalar('accuracy', float(np.mean(truth == predictions)))
        for index, label in enumerate(labels):
            if counts[index].sum():
                tf.summary.scalar(f'per_class_accuracy/{_tag(label)}',
                                  counts[index, index] / counts[index].sum())
        tf.summary.image('confusion_matrix', confusion_image(counts))
        tf.summary.text('confusion_matrix_table', confusion_table(counts, labels))
    test_writer.close()
