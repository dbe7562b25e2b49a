"""The SavedModel (--saved_model_dir), for TF Serving and Keras, built from the frozen graph.

  serving_default  image: the graph's own input (float [N, H, W, 3] in [0, 1] for ours)
                   -> prediction: float [N, classes]. What clients of earlier versions call.
  serving_bytes    image_bytes: string [N], encoded images (JPEG, PNG, GIF, BMP)
                   -> scores: float [N, classes], the same scores in the same order,
                      classes: string [N, classes], the label of each score (batch-major, so
                      TF Serving's REST `instances` answers pair them up per image).
Graphs that carry the unknown judgement (retrain.train.unknown) add to both signatures
  unknown_score: float [N], above 0 for an image unlike the training images,
  unknown: bool [N], that comparison at the default operating point.
The input key ends in `_bytes`, so TF Serving's REST API decodes {"b64": "..."} values for it.
Images are decoded and resized by retrain.data.image_io, exactly as the frozen graph's
`DecodeJpeg/contents` path does, so both give the same scores. An empty batch (no images, where
the batch size may vary) gives empty results, [0, classes], without running the graph: graphs
fail on one (a MatMul of [0, D] after shape folding; a decoding loop that cannot stack nothing),
and an empty request is no error. (TensorFlow Lite files are therefore converted from the frozen
graph, not from serving_default: its guard would become an IF op.)
"""
import contextlib
import logging as python_logging
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import tensorflow as tf

from retrain.common import fileio
from retrain.common.errors import ConfigError, ToolError
from retrain.common.graph_names import SAVED_MODEL_KEYS, UNIT_INPUT, UNKNOWN, UNKNOWN_SCORE
from retrain.data import image_io
from retrain.export import frozen_graph
from retrain.export.outputs import Trained

DEFAULT_SIGNATURE = 'serving_default'
BYTES_SIGNATURE = 'serving_bytes'
# What a SavedModel folder holds; a folder holding anything else is not ours to replace.
SAVED_MODEL_ENTRIES = frozenset(['saved_model.pb', 'variables', 'assets', 'fingerprint.pb',
                                 'assets.extra'])


class ServingModule(tf.Module):
    """The frozen graph wrapped as TF2 functions; `signatures` is what tf.saved_model.save takes.

    Graphs whose input is one encoded image (scalar string, Inception era) are called once per
    image; graphs with a fixed batch size, once per image too.
    """

    def __init__(self, graph_def: tf.compat.v1.GraphDef, input_tensor: str, output_tensor: str,
                 labels: Optional[Sequence[str]] = None,
                 keys: Tuple[str, str] = SAVED_MODEL_KEYS):
        super().__init__()
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name='')
        feed, scores = (graph.get_tensor_by_name(name) for name in (input_tensor, output_tensor))
        self._judged = [name for name in (UNKNOWN_SCORE, UNKNOWN)
                        if any(node.name == name for node in graph_def.node)]

        def classify(images):
            return tf.graph_util.import_graph_def(
                graph_def, input_map={input_tensor: images},
                return_elements=[output_tensor] + [f'{name}:0' for name in self._judged],
                name='classifier')

        self._classify = tf.compat.v1.wrap_function(classify, [tf.TensorSpec(feed.shape,
                                                                              feed.dtype)])
        self._feed = tf.TensorSpec(feed.shape, feed.dtype)
        names = labels if labels is not None else [str(i) for i in range(scores.shape[-1])]
        self._labels = tf.constant(list(names), tf.string)
        self._output_key = keys[1]
        image = tf.TensorSpec(feed.shape, feed.dtype, name=keys[0])
        self.serve = tf.function(self._serve, input_signature=[image], autograph=False)
        self.serve_bytes = tf.function(self._serve_bytes, input_signature=[
            tf.TensorSpec([None], tf.string, name='image_bytes')], autograph=False)
        # `tf.saved_model.load(path)(images)` (and hub.load, hub.KerasLayer) gives the scores,
        # as for a saved Keras model; not a signature, so TF Serving sees only the two above.
        self.__call__ = tf.function(lambda image: self._serve(image)[self._output_key],
                                    input_signature=[image], autograph=False)

    @property
    def signatures(self) -> dict:
        return {DEFAULT_SIGNATURE: self.serve, BYTES_SIGNATURE: self.serve_bytes}

    def _serve(self, image: tf.Tensor) -> dict:
        if image.shape.rank == 0 or image.shape[0] is not None:  # One image, or a fixed batch:
            results = self._classify(image)  # never empty, nothing to guard.
        else:
            results = self._unless_empty(image, lambda: self._classify(image))
        return self._named(self._output_key, results)

    def _serve_bytes(self, image_bytes: tf.Tensor) -> dict:
        results = self._unless_empty(image_bytes, lambda: self._scores_of_bytes(image_bytes))
        classes = tf.tile(self._labels[tf.newaxis], [tf.shape(results[0])[0], 1])
        return {**self._named('scores', results), 'classes': classes}

    def _named(self, key: str, results: Sequence[tf.Tensor]) -> dict:
        """The scores under `key`, then the judgement's outputs under their graph names."""
        return dict(zip([key, *self._judged], results))

    def _unless_empty(self, batch: tf.Tensor,
                      results: Callable[[], Sequence[tf.Tensor]]) -> List[tf.Tensor]:
        """results(), or empty ones ([0, classes] scores) for an empty batch, without running
        the graph."""
        classes = self._labels.shape[0]
        shapes = [[None, classes]] + [[None]] * len(self._judged)
        empty = [tf.zeros([0, classes], tf.float32)] + [
            tf.zeros([0], dtype) for dtype in (tf.float32, tf.bool)[:len(self._judged)]]
        return tf.cond(tf.shape(batch)[0] > 0,
                       lambda: [tf.ensure_shape(t, s) for t, s in zip(results(), shapes)],
                       lambda: empty)

    def _scores_of_bytes(self, image_bytes: tf.Tensor) -> tf.Tensor:
        shape = self._feed.shape
        if self._feed.dtype == tf.string:  # Old graphs only: without a judgement.
            return [tf.map_fn(lambda contents: tf.reshape(self._classify(contents)[0], [-1]),
                              image_bytes, fn_output_signature=tf.float32)]
        size = (shape[1], shape[2])
        images = tf.map_fn(lambda contents: image_io.decode_and_resize(contents, size,
                                                                       gif_frames='ops'),
                           image_bytes, fn_output_signature=tf.TensorSpec(
                               [size[0], size[1], 3], tf.float32))
        if shape[0] is None:
            return self._classify(images)
        return tf.map_fn(lambda image: [t[0] for t in self._classify(image[tf.newaxis])], images,
                         fn_output_signature=[tf.float32, tf.float32, tf.bool][
                             :1 + len(self._judged)])


@contextlib.contextmanager
def quiet_tensorflow_logger() -> Iterator[None]:
    """Without TensorFlow's INFO lines while saving: they name the temporary folder (absl's
    logger carries those of its saving code, 'tensorflow' those of the rest). A filter, as
    saving may set the loggers' levels itself."""
    def warnings_and_worse(record: python_logging.LogRecord) -> bool:
        return record.levelno >= python_logging.WARNING

    loggers = [python_logging.getLogger(name) for name in ('absl', 'tensorflow')]
    for logger in loggers:
        logger.addFilter(warnings_and_worse)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(warnings_and_worse)


def write_saved_model(directory: str, graph_def: tf.compat.v1.GraphDef,
                      input_tensor: str = f'{UNIT_INPUT}:0',
                      output_tensor: str = 'final_result:0',
                      labels: Optional[Sequence[str]] = None,
                      keys: Tuple[str, str] = SAVED_MODEL_KEYS) -> None:
    """A SavedModel for TF Serving and Keras: `serving_default` (input `image`, output
    `prediction`) and `serving_bytes` (encoded images in, `scores` and `classes` out; see
    the module doc). `labels` name the classes (default: their indices).

    Built from the frozen graph itself, so the SavedModel and the graph cannot disagree; any
    frozen classifier graph (old ones too) goes through here.
    """
    module = ServingModule(graph_def, input_tensor, output_tensor, labels, keys)
    with fileio.atomic_directory(directory) as temp, quiet_tensorflow_logger():
        tf.saved_model.save(module, temp, signatures=module.signatures)


def check_output(path: str) -> None:
    """Refuses a SavedModel folder that may not be replaced: a file, or a folder holding anything
    but a SavedModel (it is replaced as a whole, and a tool only removes what it wrote: the flag
    names the wrong place, a usage error as for --report_dir)."""
    if tf.io.gfile.exists(path):
        if not tf.io.gfile.isdir(path):
            raise ToolError(f'cannot write a SavedModel to {path}: it is a file, not a folder')
        entries = [name.rstrip('/') for name in tf.io.gfile.listdir(path)]
        others = sorted(set(entries) - SAVED_MODEL_ENTRIES)
        if others or (entries and 'saved_model.pb' not in entries):
            shown = ', '.join(others[:3] or entries[:3])
            raise ConfigError(f'will not replace {path}: it holds more than a SavedModel '
                            f'({shown}{", ..." if len(others or entries) > 3 else ""}); '
                            f'name an empty or new folder')


def write_output(path: str, trained: Trained) -> None:
    write_saved_model(path, frozen_graph.graph_of(trained),
                      output_tensor=trained.config.final_tensor_name + ':0',
                      labels=trained.labels, keys=trained.signature_keys or SAVED_MODEL_KEYS)


def wrote_line(path: str, trained: Trained) -> str:
    return f'Wrote SavedModel to {path}'
