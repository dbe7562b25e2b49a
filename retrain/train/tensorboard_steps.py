"""TensorBoard records written while training runs: the classic scalars and histograms, cheaply.

A classic run evaluates 400 times (4000 steps, every 10). `tf.summary.histogram` costs about
1.5 ms a call (it buckets through a one-hot matrix) and an eager `tf.summary.scalar` about 0.5 ms,
together more than the training steps between two evaluations, and even writing a ready record
through tf.summary costs a quarter of a millisecond. Here the buckets come from NumPy and each
evaluation becomes one Event record appended to an event file of our own (a TFRecord file, as
tf.summary writes): the same records, with the same plugin metadata, that TensorBoard reads.
"""
import os
import socket
import time
from typing import ContextManager, Dict, Optional

import numpy as np
import tensorflow as tf

from retrain.common.fileio import write_failures

_BUCKETS = 30  # As tf.summary.histogram.
# How TensorBoard event files are named, by tf.summary and here alike.
EVENT_FILE_PREFIX = 'events.out.tfevents.'


def plugin_metadata(plugin_name: str) -> tf.compat.v1.SummaryMetadata:
    """What tf.summary.scalar and .histogram attach: the name of the TensorBoard plugin, only."""
    return tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=plugin_name))


_SCALAR = plugin_metadata('scalars')
_HISTOGRAM = plugin_metadata('histograms')


def histogram_buckets(values: np.ndarray) -> np.ndarray:
    """float64 [30, 3] rows of (left edge, right edge, count), as tf.summary.histogram has them."""
    counts, edges = np.histogram(np.asarray(values, np.float64).ravel(), bins=_BUCKETS)
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def summaries_written(path: str) -> ContextManager[None]:
    """A failure to write TensorBoard records (a full disk ...) as one line naming `path`."""
    return write_failures(path, 'TensorBoard summaries to ')


class StepWriter:
    """One TensorBoard run folder (`train` or `validation`) of a training run."""

    def __init__(self, directory: str):
        name = f'{EVENT_FILE_PREFIX}{int(time.time())}.{socket.gethostname()}.{os.getpid()}.v2'
        self.path = os.path.join(directory, name)
        with summaries_written(self.path):
            tf.io.gfile.makedirs(directory)
            self.writer = tf.io.TFRecordWriter(self.path)
        self._append(tf.compat.v1.Event(file_version='brain.Event:2'))

    def write(self, step: int, scalars: Dict[str, float],
              histograms: Optional[Dict[str, np.ndarray]] = None) -> None:
        event = tf.compat.v1.Event(step=step)
        for tag, value in scalars.items():
            entry = event.summary.value.add(tag=tag)
            entry.metadata.CopyFrom(_SCALAR)
            entry.tensor.dtype = tf.float32.as_datatype_enum
            entry.tensor.float_val.append(value)
        for tag, values in (histograms or {}).items():
            buckets = histogram_buckets(values)
            entry = event.summary.value.add(tag=tag)
            entry.metadata.CopyFrom(_HISTOGRAM)
            entry.tensor.dtype = tf.float64.as_datatype_enum
            for size in buckets.shape:
                entry.tensor.tensor_shape.dim.add(size=size)
            entry.tensor.tensor_content = buckets.astype('<f8').tobytes()
        self._append(event)

    def _append(self, event: tf.compat.v1.Event) -> None:
        event.wall_time = time.time()
        with summaries_written(self.path):
            self.writer.write(event.SerializeToString())

    def close(self) -> None:
        with summaries_written(self.path):
            self.writer.close()


def run_writers(summaries_dir: str) -> Dict[str, StepWriter]:
    """A writer for each TensorBoard run of training, `train` and `validation` folders in
    `summaries_dir` (none without one). Joined with '/', which TensorFlow's file systems (local,
    gs://) all accept."""
    if not summaries_dir:
        return {}
    return {run: StepWriter(f'{summaries_dir.rstrip("/")}/{run}')
            for run in ('train', 'validation')}
