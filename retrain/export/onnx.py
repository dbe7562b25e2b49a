"""The retrained classifier as an ONNX file (--onnx_output_file), for ONNX Runtime, OpenVINO,
OpenCV DNN and the other runtimes that read ONNX.

The file keeps retrain.export.onnx_contract: image float32 [N, H, W, 3] in [0, 1] in, scores out,
labels and pixel preparation in its metadata_props. It is converted by tf2onnx (the onnx extra)
from a clean inference graph, tflite.classifier_graph's Placeholder -> frozen extractor -> new
layer -> activation, not from the frozen graph: its historical entry points (JPEG decoding, the
(x - 128) / 128 round trip) are TensorFlow-era conveniences that ONNX runtimes either lack or
would run for nothing. Weights are stored inside the file (no external data: loaders refuse it).
"""
import logging as python_logging
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from retrain.common import fileio, interrupts
from retrain.common.errors import ToolError, error_summary
from retrain.common.graph_names import UNIT_INPUT, UNKNOWN_SCORE, judges
from retrain.export import onnx_contract, tflite
from retrain.export.outputs import Trained

# Opset 13 (ONNX 1.8, 2020): what OpenCV DNN, OpenVINO and mobile ONNX Runtime builds all run.
OPSET = 13


def _inference_graph(graph_def: tf.compat.v1.GraphDef, image_size: Tuple[int, int],
                     input_tensor: str, output_tensor: str,
                     batch: Optional[int]) -> tf.compat.v1.GraphDef:
    """`graph_def` imported under `classifier/` between a fresh `image` [batch, H, W, 3] input
    and a `scores` output (and `unknown_score` where the graph has one): the file's tensor names
    whatever the graph's own names are."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [batch, image_size[0], image_size[1], 3],
                                         name=onnx_contract.INPUT_NAME)
        outputs = tf.graph_util.import_graph_def(
            graph_def, input_map={input_tensor: image},
            return_elements=[output_tensor] + [f'{name}:0' for name in _judged(graph_def)],
            name='classifier')
        for output, name in zip(outputs, _output_names(graph_def)):
            tf.identity(output, name=name)
    return _defaults_as_identities(graph.as_graph_def())


def _judged(graph_def: tf.compat.v1.GraphDef) -> list:
    return [UNKNOWN_SCORE] if judges(graph_def) else []


def _output_names(graph_def: tf.compat.v1.GraphDef) -> list:
    """The file's outputs: `scores`, then `unknown_score` where the graph judges."""
    return [onnx_contract.OUTPUT_NAME] + [onnx_contract.UNKNOWN_OUTPUT] * len(_judged(graph_def))


def _defaults_as_identities(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """Old graphs' entry points made by PlaceholderWithDefault (`input_1/Bottleneck...`, `input`)
    become Identity ops of their defaults: nothing feeds them in the file, and tf2onnx refuses a
    default that is not a constant."""
    for node in graph_def.node:
        if node.op == 'PlaceholderWithDefault':
            dtype = node.attr['dtype']
            node.op = 'Identity'
            node.attr['T'].CopyFrom(dtype)
            del node.attr['dtype']
            del node.attr['shape']
    return graph_def


def convert(graph_def: tf.compat.v1.GraphDef, image_size: Tuple[int, int], labels: Sequence[str],
            activation: str = 'softmax', output_tensor: str = 'final_result:0',
            input_tensor: str = f'{UNIT_INPUT}:0', description: str = '',
            batch: Optional[int] = None):
    """The onnx.ModelProto of the classifier from `input_tensor` (float [N, H, W, 3] in [0, 1])
    to `output_tensor` (the `activation` scores of `labels`). `batch`: None, any N; or the
    batch size an old graph is fixed to (Poets' and Inception's: 1, reshapes rely on it)."""
    try:
        # Ctrl-C in the middle of onnx's C++ extension import aborts the process (SIGABRT, no
        # clean-up): the import holds it off (the optional onnx extra, imported when used).
        with interrupts.deferred():
            import tf2onnx
    except ImportError:
        raise ToolError('ONNX output needs tf2onnx and onnx: '
                        f'{onnx_contract.EXTRA_HINT}') from None
    python_logging.getLogger('tf2onnx').setLevel(python_logging.ERROR)  # Per-op chatter.
    outputs = _output_names(graph_def)
    names = {f'{name}:0': name for name in (onnx_contract.INPUT_NAME, *outputs)}
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            _inference_graph(graph_def, image_size, input_tensor, output_tensor, batch),
            input_names=[f'{onnx_contract.INPUT_NAME}:0'],
            output_names=[f'{name}:0' for name in outputs], opset=OPSET,
            tensors_to_rename=names)
    except Exception as e:  # noqa: BLE001  tf2onnx raises many kinds.
        raise ToolError(f'cannot convert the classifier to ONNX: {type(e).__name__}: '
                        f'{error_summary(e)}') from None
    for value in (*model.graph.input, *model.graph.output):  # tf2onnx names it `unk__12`.
        if batch is None:
            value.type.tensor_type.shape.dim[0].dim_param = onnx_contract.BATCH
    model.producer_name = onnx_contract.PRODUCER
    model.doc_string = description
    onnx_contract.set_metadata(model, onnx_contract.metadata(labels, image_size, activation))
    problem = onnx_contract.file_access_problem(model)
    if problem:  # tf2onnx stores small models whole; loaders would refuse anything else.
        raise ToolError(f'cannot write the classifier as ONNX: {problem}')
    return model


def write_onnx(path: str, model) -> None:
    fileio.atomic_write(path, model.SerializeToString())


def write_output(path: str, trained: Trained) -> None:
    config, extractor = trained.config, trained.extractor
    graph = tflite.classifier_graph(extractor, trained.head, config.final_tensor_name,
                                    trained.unknown)
    write_onnx(path, convert(
        graph, extractor.image_size, trained.labels, trained.head.activation,
        config.final_tensor_name + ':0',
        description=f'A classifier of {len(trained.labels)} classes retrained on '
        f'{extractor.description}.'))


def wrote_line(path: str, trained: Trained) -> str:
    return (f'Wrote ONNX model ({trained.head.activation} scores, '
            f'{tf.io.gfile.stat(path).length} bytes) to {path}')
