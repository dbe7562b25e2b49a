"""What every ONNX classifier of this project carries, and what a loader refuses.

One contract for every file, whoever wrote it (`retrain --onnx_output_file`, `compat convert`):
  input    one, float32 [N, H, W, 3], RGB in [0, 1], N free (the SavedModel's serving_default
           takes the same pixels);
  output   the first is the class scores [N, classes], softmax (sigmoid per label for
           --multi_label models); single-label files of retrain add `unknown_score` float [N]
           (above 0: the image is unlike the training images; retrain.train.unknown);
  metadata_props  labels: the labels in score order, one per line;
                  image_size: "H,W";  input_range: "0,1";  scores: "softmax" or "sigmoid".
A client reads these and needs nothing else (no labels file, no TensorFlow).

Free of TensorFlow and of the `onnx` package: it works on a ModelProto, which both onnx and the
loaders have.
"""
from typing import Dict, Sequence, Tuple

from retrain.common.errors import ToolError
from retrain.common.graph_names import UNKNOWN_SCORE

LABELS, IMAGE_SIZE, INPUT_RANGE, SCORES = 'labels', 'image_size', 'input_range', 'scores'
INPUT_NAME, OUTPUT_NAME = 'image', 'scores'
UNKNOWN_OUTPUT = UNKNOWN_SCORE  # The optional second output.
BATCH = 'N'  # The name of the free batch dimension of the input and the scores.
PRODUCER = 'retrain'
EXTRA_HINT = "pip install '.[onnx]'"  # What writing and reading .onnx files need.
# The op sets whose ops a loader runs: ONNX's own (named '' or 'ai.onnx') and its classical-ML set.
# None of their ops reads or writes files (the op lists at onnx.ai/onnx/operators: math, tensor,
# neural-network, control-flow and ML ops; inputs and outputs are tensors only). Other domains are
# runtime extensions (custom ops, which run arbitrary code) and are refused.
STANDARD_DOMAINS = frozenset(['', 'ai.onnx', 'ai.onnx.ml'])


def metadata(labels: Sequence[str], image_size: Tuple[int, int], activation: str) -> Dict[str, str]:
    """The metadata_props of a classifier of `labels` (score order) taking H x W images."""
    for label in labels:
        if '\n' in label or '\r' in label:
            raise ToolError(f'cannot write the label {label!r} into an ONNX file: labels are '
                            'stored one per line')
    return {LABELS: '\n'.join(labels), IMAGE_SIZE: f'{image_size[0]},{image_size[1]}',
            INPUT_RANGE: '0,1', SCORES: activation}


def set_metadata(model, props: Dict[str, str]) -> None:
    """Replaces the model's metadata_props with `props` (keys in a stable order)."""
    del model.metadata_props[:]
    for key in sorted(props):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, props[key]


def read_metadata(model) -> Dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def _graphs(graph):
    """`graph` (a GraphProto or FunctionProto) and every subgraph in its nodes' attributes (If,
    Loop, Scan bodies)."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField('g'):
                yield from _graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graphs(subgraph)


def _tensors(graph):
    """Every tensor stored in `graph`: initializers, sparse initializers, constant attributes."""
    yield from getattr(graph, 'initializer', ())
    for sparse in getattr(graph, 'sparse_initializer', ()):
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField('t'):
                yield attribute.t
            yield from attribute.tensors


def file_access_problem(model) -> str:
    """Why loading or running `model` could touch files other than itself; '' when it cannot.

    Checked: every node of the graph, of its subgraphs and of its functions is in a standard op
    set (STANDARD_DOMAINS: no standard op does file I/O) or calls a function of the model, and no
    tensor is stored as external data (ONNX's one way to make a loader read another file: its
    `location` is a path, which may point anywhere).
    """
    functions = {(function.domain, function.name) for function in model.functions}
    graphs = [*_graphs(model.graph), *(g for f in model.functions for g in _graphs(f))]
    for graph in graphs:
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in functions:
                return (f'it runs the operator {node.domain}.{node.op_type} (node '
                        f'{node.name or "without a name"}), outside the standard ONNX op sets')
        for tensor in _tensors(graph):
            if tensor.data_location == tensor.EXTERNAL or tensor.external_data:
                return (f'its tensor {tensor.name or "without a name"} is stored in another '
                        'file (external data)')
    return ''
