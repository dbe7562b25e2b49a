"""Migrating an old frozen graph to a TF2 SavedModel (and TFLite, ONNX) with one uniform
interface.

Whatever the generation, the SavedModel's `serving_default` takes `image`: float
[N, H, W, 3] in [0, 1] (the Hub-era convention, and what retrain --saved_model_dir writes), and
returns `prediction`. The graph's own normalization (Poets' (pixel - 127.5) / 127.5, Inception's
Sub/Mul) is built in front of its entry point, so no client needs to know it any more. Graphs
that only take encoded bytes keep a string `image` input. The labels go into the SavedModel's
`assets/labels.txt`. Before anything is kept, the result is checked against the original graph.
The SavedModel also answers encoded images (`serving_bytes`, retrain.export.saved_model), the
.tflite file carries metadata (retrain.export.tflite_metadata) and the .onnx file keeps
retrain.export.onnx_contract, as retrain's outputs do.
"""
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from compat import classifier as models
from compat import graphs, signature
from compat import labels as labels_io
from retrain.common import fileio
from retrain.common.errors import ToolError
from retrain.config import FILE, INPUT, REPLACED, check_apart
from retrain.export import labels_file, saved_model, staging, tflite, tflite_metadata
from retrain.export import onnx as onnx_export
from retrain.features import graph_files

_TOLERANCE = 1e-3


def convert(graph_path: str, labels_path: str, saved_model_dir: str,
            tflite_output_file: Optional[str] = None,
            overrides: models.Overrides = models.Overrides(),  # noqa: B008  Frozen: shareable.
            allow_unsafe_ops: bool = False,
            onnx_output_file: Optional[str] = None) -> models.Classifier:
    """Writes the SavedModel (and .tflite, .onnx); returns the converted model, loaded and
    checked.

    Both are written beside their targets and moved into place only once checked, so a failed
    check leaves what was there before; a folder holding more than a SavedModel is refused. The
    paths must lie apart (retrain.config.check_apart), or ConfigError.
    """
    check_apart([(flag, path, kind) for flag, path, kind in (
        ('saved_model_dir', saved_model_dir, REPLACED),
        ('tflite_output_file', tflite_output_file, FILE),
        ('onnx_output_file', onnx_output_file, FILE),
        ('GRAPH', graph_path, INPUT), ('labels', labels_path, INPUT)) if path])
    staging.check_replaced(saved_model_dir, saved_model)
    for path in (tflite_output_file, onnx_output_file):
        if path:
            staging.check_file(path)
    original = models.load(graph_path, overrides, allow_unsafe_ops)
    if original.format != models.FROZEN_GRAPH:
        raise ToolError(f'{graph_path} is not a frozen graph; only those need converting')
    labels = labels_io.read_labels(labels_path)
    labels_io.check_count(labels, labels_path, original.num_classes, graph_path)
    graph_def, input_tensor, output_tensor = unit_input_graph(
        graph_files.load_graph_def(graph_path), original.spec, original.output)
    with staging.staged() as stage:  # Errors in stage.output name the target, not a temporary.
        with stage.output(saved_model_dir) as staged_dir:
            saved_model.write_saved_model(staged_dir, graph_def, input_tensor, output_tensor,
                                     labels=labels)
            labels_file.write_labels(os.path.join(staged_dir, 'assets', 'labels.txt'), labels)
            converted = models.load(staged_dir, allow_unsafe_ops=allow_unsafe_ops)
            _check_same(original, converted, saved_model_dir)
        if tflite_output_file:
            with stage.output(tflite_output_file) as staged_file:
                write_tflite((graph_def, input_tensor, output_tensor), original.spec,
                             staged_file, labels, f'{os.path.basename(graph_path)} '
                             f'({original.kind}) converted by python -m compat.')
                _check_same(original, models.load(staged_file), tflite_output_file)
        if onnx_output_file:
            with stage.output(onnx_output_file) as staged_file:
                write_onnx((graph_def, input_tensor, output_tensor), original, staged_file,
                           labels, f'{os.path.basename(graph_path)} ({original.kind}) '
                           'converted by python -m compat.')
                _check_same(original, models.load(staged_file), onnx_output_file)
    return converted


def unit_input_graph(graph_def: tf.compat.v1.GraphDef, spec: signature.InputSpec, output: str):
    """(graph_def, input, output): the graph behind an `image` input in [0, 1] if it needs one:
    a normalization, or a size (a graph of any size is converted at --input_height/--input_width,
    the size every output of the conversion then takes)."""
    if spec.encoded or ((spec.mean, spec.std) == signature.UNIT
                        and not _takes_any_size(graph_def, spec.tensor)):
        return graph_def, spec.tensor, output
    height, width = spec.size
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [spec.batch, height, width, 3], name='image')
        with tf.name_scope('normalize'):
            normalized = (image * 255.0 - spec.mean) / spec.std
        prediction, = tf.graph_util.import_graph_def(
            graph_def, input_map={spec.tensor: normalized}, return_elements=[output],
            name='classifier')
    return graph.as_graph_def(), 'image:0', prediction.name


def _takes_any_size(graph_def: tf.compat.v1.GraphDef, tensor: str) -> bool:
    """Whether the entry `tensor` is a placeholder without a fixed height and width."""
    node = next(node for node in graph_def.node if node.name == graphs.node_name(tensor))
    shape = node.attr['shape'].shape if 'shape' in node.attr else None
    return bool(shape) and (shape.unknown_rank or len(shape.dim) != 4
                            or min(dim.size for dim in shape.dim[1:3]) < 1)


def write_tflite(graph, spec: signature.InputSpec, path: str, labels: Sequence[str],
                 description: str) -> None:
    """`graph` (graph_def, input, output: unit_input_graph's) as a .tflite file of one image
    [1, H, W, 3] in [0, 1] -> scores, with its metadata; as retrain writes them, from the frozen
    graph (the SavedModel's serving_default guards against empty batches with control flow)."""
    graph_def, input_tensor, output_tensor = graph
    if spec.encoded:
        raise ToolError('cannot convert a graph that takes encoded images to TFLite: '
                        'TensorFlow Lite has no image decoders')
    model = tflite.convert(graph_def, spec.size, output_tensor, input_tensor=input_tensor)
    fileio.atomic_write(path, tflite_metadata.add_metadata(
        model, tflite.MODEL_NAME, description, labels))


def write_onnx(graph, original: models.Classifier, path: str, labels: Sequence[str],
               description: str) -> None:
    """`graph` (unit_input_graph's) as an .onnx file keeping retrain.export.onnx_contract: an
    image batch in [0, 1] -> scores, labels in its metadata (needs the onnx extra)."""
    graph_def, input_tensor, output_tensor = graph
    if original.spec.encoded:
        raise ToolError('cannot convert a graph that takes encoded images to ONNX: ONNX has no '
                        'image decoders')
    activation = ('sigmoid' if original.multi_label else
                  'softmax' if original.output_op == 'Softmax' else
                  original.output_op.lower() or 'unknown')
    onnx_export.write_onnx(path, onnx_export.convert(
        graph_def, original.spec.size, labels, activation, output_tensor, input_tensor,
        description, original.spec.batch))


def _check_same(original: models.Classifier, converted: models.Classifier, where: str) -> None:
    """Both give the same scores for two fixed random images (a batch, where the model takes
    one), or the conversion is refused."""
    height, width = original.spec.size or (64, 64)
    rng = np.random.default_rng(0)
    contents = [tf.io.encode_png(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).numpy()
                for _ in range(2)]
    expected, actual = original.classify(contents), converted.classify(contents)
    difference = float(np.max(np.abs(expected - actual)))
    if difference > _TOLERANCE:
        raise ToolError(f'the conversion in {where} gives different scores from the original '
                        f'graph (max difference {difference:.6f})')
