"""The retrained frozen graph: what old client code loads.

The frozen graph is what old client code loads, so it answers every historical entry point
(docs/COMPATIBILITY.md section 5) and ends in `final_result:0`:

  DecodeJpeg/contents:0  encoded image bytes (JPEG, PNG, GIF, BMP), scalar string
  Placeholder:0          float [N, H, W, 3] in [0, 1]                 (TF Hub era clients)
  Mul:0, input:0         float [N, H, W, 3] as (pixel - 128) / 128     (Inception/Poets clients)
  input_1/BottleneckInputPlaceholder:0   bottlenecks [N, D]

Each entry point is a tensor on one chain, so feeding any of them skips what lies before it.
The chain ends in `module_input:0`, float [N, H, W, 3] in [0, 1] as the model itself reads it:
label_image feeds that, past the pixel conversions between the historical entry points.
A single-label graph also answers whether each image is unlike the training images
(retrain.train.unknown): `unknown_score:0` (float [N], above 0: unknown) and `unknown:0` (bool
[N]), added beside `final_result:0`, which is unchanged.
The feature extractor is frozen into constants and imported under `module/`; the entry points
are created first so that they get their exact names (graph names are unique case-insensitively).
"""
import os
from typing import Optional

import tensorflow as tf

from retrain.common import fileio
from retrain.common.errors import ToolError, error_summary
from retrain.common.graph_names import (
    BOTTLENECK_INPUT,
    CENTERED_INPUTS,
    JPEG_INPUT,
    MODEL_INPUT,
    UNIT_INPUT,
)
from retrain.data import image_io
from retrain.export.outputs import Trained
from retrain.features.extractors import FeatureExtractor, FrozenExtractor
from retrain.train import unknown
from retrain.train.heads import Head


def check_exportable(extractor: FeatureExtractor) -> None:
    """Freezes the model now, before caching: every export embeds it frozen, so a model that
    cannot be frozen is refused in one line instead of failing after all the work."""
    try:
        extractor.freeze()
    except Exception as e:  # noqa: BLE001  Conversion raises many kinds.
        raise ToolError(f'cannot use {extractor.description}: it cannot be frozen into the '
                        f'exported graph ({type(e).__name__}: {error_summary(e)})') from None


def build_graph(extractor: FeatureExtractor, head: Head,
                final_tensor_name: str = 'final_result',
                judgement: Optional[unknown.Fitted] = None) -> tf.compat.v1.GraphDef:
    """The complete classifier as a frozen GraphDef with all entry points (see module doc), and
    `unknown_score`, `unknown` when given a judgement."""
    frozen = extractor.freeze()  # Eagerly, before building a graph.
    height, width = extractor.image_size
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name=JPEG_INPUT)
        with tf.name_scope('decode_and_resize'):
            decoded = image_io.resize_to_unit_range(image_io.decode(contents)[tf.newaxis],
                                                   (height, width))
        unit = tf.compat.v1.placeholder_with_default(decoded, [None, height, width, 3],
                                                     name=UNIT_INPUT)
        with tf.name_scope('center'):
            shifted = tf.subtract(unit * 255.0, 128.0)
        centered = tf.multiply(shifted, 1.0 / 128.0, name=CENTERED_INPUTS[0])
        centered = tf.compat.v1.placeholder_with_default(centered, [None, height, width, 3],
                                                         name=CENTERED_INPUTS[1])
        with tf.name_scope('uncenter'):
            images = (centered * 128.0 + 128.0) / 255.0
        images = tf.identity(images, name=MODEL_INPUT)
        bottleneck_input = tf.compat.v1.placeholder_with_default(
            import_extractor(frozen, images), [None, extractor.bottleneck_size],
            name=BOTTLENECK_INPUT)
        logits = add_final_layer(bottleneck_input, head, final_tensor_name)
        if judgement is not None:
            unknown.tf_score(judgement, bottleneck_input, logits)
    return graph.as_graph_def()


def import_extractor(frozen: FrozenExtractor, images: tf.Tensor) -> tf.Tensor:
    """The frozen extractor imported under `module/` into the current graph; its bottlenecks."""
    bottleneck, = tf.graph_util.import_graph_def(
        frozen.graph_def, input_map={frozen.input_name: images},
        return_elements=[frozen.output_name], name='module')
    return bottleneck


def add_final_layer(bottleneck_input: tf.Tensor, head: Head, final_tensor_name: str) -> tf.Tensor:
    """The new layer's ops under their classic names: final_training_ops/..., final_result
    (softmax, or a sigmoid per label for a multi-label head); returns the logits."""
    with tf.name_scope('final_training_ops'):
        with tf.name_scope('weights'):
            weights = tf.constant(head.weights, name='final_weights')
        with tf.name_scope('biases'):
            biases = tf.constant(head.biases, name='final_biases')
        with tf.name_scope('Wx_plus_b'):
            logits = tf.add(tf.matmul(bottleneck_input, weights), biases, name='add')
    activation = {'softmax': tf.nn.softmax, 'sigmoid': tf.math.sigmoid}[head.activation]
    activation(logits, name=final_tensor_name)
    return logits


def final_layer_graph(head: Head, final_tensor_name: str = 'final_result') -> tf.compat.v1.GraphDef:
    """Only the new layer, bottleneck input to softmax: small enough to show in TensorBoard."""
    graph = tf.Graph()
    with graph.as_default():
        bottleneck_input = tf.compat.v1.placeholder(
            tf.float32, [None, head.weights.shape[0]], name=BOTTLENECK_INPUT)
        add_final_layer(bottleneck_input, head, final_tensor_name)
    return graph.as_graph_def()


def write_graph(path: str, graph_def: tf.compat.v1.GraphDef) -> None:
    """The frozen graph; deterministic: a seeded run writes the same bytes every time."""
    fileio.atomic_write(path, graph_def.SerializeToString(deterministic=True))


def graph_of(trained: Trained) -> tf.compat.v1.GraphDef:
    """The run's classifier graph, built once: the graph file and the SavedModel share it."""
    if trained.graph_def is None:
        trained.graph_def = build_graph(trained.extractor, trained.head,
                                        trained.config.final_tensor_name, trained.unknown)
    return trained.graph_def


def write_output(path: str, trained: Trained) -> None:
    write_graph(path, graph_of(trained))


def wrote_line(path: str, trained: Trained) -> str:
    return f'Wrote graph to {path}'


def intermediate_graph_path(directory: str, step: int) -> str:
    return os.path.join(directory, f'intermediate_{step}.pb')
