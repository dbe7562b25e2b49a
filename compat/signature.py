"""What a classifier graph expects as input, worked out from the graph itself.

Classic label_image needed `--input_layer/--input_mean/--input_std` and printed confident
nonsense when they were wrong. Every generation of retrained graph says enough about itself:

  this project      DecodeJpeg/contents, Placeholder, Mul, input -> final_result (feed Placeholder)
  TF Hub era        Placeholder: float [N, H, W, 3] in [0, 1]
  Poets era         input: float [1, H, W, 3]; a slim MobileNet/Inception base trained on
                    (pixel - 127.5) / 127.5, which is also how Poets retrain.py computed the
                    bottlenecks the final layer was trained on
  Inception era     DecodeJpeg/contents -> ... -> Sub(128) -> Mul(1/128): the normalization is
                    read from those constants; Mul is fed so decoding happens outside

Images always reach a classifier decoded and resized by retrain.data.image_io as [0, 1] floats; an
InputSpec turns them into what the entry tensor takes: (pixel - mean) / std with pixel in 0..255.
"""
import dataclasses
from typing import Dict, Optional, Set, Tuple

import tensorflow as tf

from compat import graphs
from retrain.common.errors import ToolError
from retrain.common.graph_names import CENTERED_INPUTS, JPEG_INPUT, MODEL_INPUT, UNIT_INPUT
from retrain.data import image_io

UNIT = (0.0, 255.0)
CLASSIC_CENTERED = (128.0, 128.0)
SLIM_CENTERED = (127.5, 127.5)
_SLIM_SCOPES = ('MobilenetV1/', 'MobilenetV2/', 'InceptionV1/', 'InceptionV2/', 'InceptionV3/',
                'InceptionV4/', 'InceptionResnetV2/')
_PASS_THROUGH = ('Identity', 'PlaceholderWithDefault', 'Snapshot', 'EnsureShape')
# Function calls, by the attr naming the function that computes the scores: a call's 'f'; an
# If's 'then_branch' (a SavedModel's guard against empty batches, retrain.export.saved_model).
_CALLS = {'PartitionedCall': 'f', 'StatefulPartitionedCall': 'f', 'If': 'then_branch',
          'StatelessIf': 'then_branch'}
_PROJECT_ENTRY_POINTS = (JPEG_INPUT, UNIT_INPUT, *CENTERED_INPUTS)
# Normalizations closer than this (max difference over pixel values 0..255) are the same thing:
# 128/128 and 127.5/127.5 differ by 0.008 and move scores far less than the 0.02 we promise.
_SAME_NORMALIZATION = 0.05


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One entry tensor and how to feed it."""
    tensor: str
    encoded: bool = False                     # takes encoded image bytes (strings)
    size: Optional[Tuple[int, int]] = None    # (height, width) for decoded images
    batch: Optional[int] = None               # fixed batch size; None: any
    scalar: bool = False                      # one image per run, no batch dimension
    mean: float = UNIT[0]
    std: float = UNIT[1]
    dtype: str = 'float32'                    # float32, or uint8 for quantized TFLite inputs
    reason: str = ''                          # why this normalization, for -v and inspect
    expected: Optional[Tuple[float, float]] = None  # detected mean/std an override contradicts

    def normalize(self, images) -> tf.Tensor:
        """[N, H, W, 3] floats in [0, 1] (array or tensor) -> what the entry tensor takes.

        In TensorFlow, not NumPy: a batch never leaves it on its way from decoding to the model.
        """
        if self.dtype != 'uint8' and (self.mean, self.std) == UNIT:
            return tf.cast(images, tf.float32)  # Already so; (x * 255) / 255 is not always x.
        pixels = tf.cast(images, tf.float32) * 255.0
        if self.dtype == 'uint8':
            return tf.cast(tf.clip_by_value(tf.round(pixels), 0, 255), tf.uint8)
        return (pixels - self.mean) / self.std

    def describe(self) -> str:
        if self.encoded:
            what = 'encoded image bytes'
        elif self.dtype == 'uint8':
            what = f'uint8 pixels {self._shape()}'
        else:
            what = f'float {self._shape()} as {formula(self.mean, self.std)}'
        return f'{self.tensor}: {what}' + (f' ({self.reason})' if self.reason else '')

    def _shape(self) -> str:
        height, width = self.size or ('?', '?')
        return f'[{self.batch or "N"}, {height}, {width}, 3]'


def formula(mean: float, std: float) -> str:
    if (mean, std) == UNIT:
        return 'values in [0, 1]'
    return f'(pixel - {mean:g}) / {std:g}'


def same_normalization(a: Tuple[float, float], b: Tuple[float, float]) -> bool:
    return all(abs((p - a[0]) / a[1] - (p - b[0]) / b[1]) < _SAME_NORMALIZATION
               for p in (0.0, 255.0))


def tensor_name(name: str) -> str:
    return name if ':' in name else name + ':0'


def find_output(graph_def: tf.compat.v1.GraphDef, path: str,
                output_layer: Optional[str] = None) -> str:
    """`--output_layer`, else `final_result:0`, else the graph's single Softmax."""
    names = {node.name for node in graph_def.node}
    if output_layer:
        if output_layer.split(':')[0] not in names:
            raise ToolError(f'no tensor {output_layer} in {path}')
        return tensor_name(output_layer)
    if 'final_result' in names:
        return 'final_result:0'
    softmaxes = [node.name for node in graph_def.node if node.op == 'Softmax']
    if len(softmaxes) == 1:
        return tensor_name(softmaxes[0])
    raise ToolError(f'cannot tell the output of {path}: no final_result and '
                    f'{len(softmaxes)} Softmax ops; name it with --output_layer')


def output_op(graph_def: tf.compat.v1.GraphDef, output: str) -> str:
    """The type of the op that computes `output`, past Identity and the like ('' if unknown):
    Softmax or Sigmoid where the scores are probabilities, anything else where they are not.

    A SavedModel's signature output is a function call (PartitionedCall, If): the walk goes on
    from the returned tensor inside the called function (graph_def.library), however nested.
    """
    functions = {function.signature.name: function for function in graph_def.library.function}
    nodes = {node.name: node for node in graph_def.node}
    tensor = output
    for _ in range(len(graph_def.node) + sum(len(f.node_def) for f in functions.values())):
        node = nodes.get(graphs.node_name(tensor))
        if node is None:
            return ''
        if node.op in _PASS_THROUGH and node.input:
            tensor = node.input[0]
        elif node.op in _CALLS and node.attr[_CALLS[node.op]].func.name in functions:
            function = functions[node.attr[_CALLS[node.op]].func.name]
            index = _output_index(tensor)
            if index >= len(function.signature.output_arg):
                return ''
            tensor = function.ret[function.signature.output_arg[index].name]
            nodes = {inner.name: inner for inner in function.node_def}
        else:
            return node.op
    return ''  # Calls in a cycle: not a model that any tool this reads made.


def _output_index(tensor: str) -> int:
    """`name` -> 0, `name:1` -> 1 (a graph's tensors), `name:output:1` -> 1 (a function's)."""
    parts = tensor.split(':')
    return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 0


def generation(graph_def: tf.compat.v1.GraphDef) -> str:
    """Which tool made the graph, in a few words (for inspect and -v)."""
    names = {node.name for node in graph_def.node}
    if _made_here(names):
        return 'this project (retrain on TensorFlow 2)'
    if 'final_result' not in names and 'input_1/BottleneckInputPlaceholder' not in names:
        return 'not a retrain.py graph (no final_result)'
    if 'Placeholder' in names:
        return 'TF Hub era retrain.py'
    if 'input' in names:
        return 'TensorFlow for Poets era retrain.py'
    if 'DecodeJpeg/contents' in names:
        return 'Inception era retrain.py'
    return 'unknown'


def _made_here(names) -> bool:
    """Whether a graph with these node names was exported by this project
    (retrain.export.frozen_graph)."""
    return all(name in names for name in _PROJECT_ENTRY_POINTS)


def detect_input(graph_def: tf.compat.v1.GraphDef, graph: tf.Graph, output: str, path: str,
                 input_layer: Optional[str] = None, mean: Optional[float] = None,
                 std: Optional[float] = None,
                 size: Optional[Tuple[int, int]] = None) -> InputSpec:
    """The entry point to feed and its preprocessing; flags given by the user override."""
    nodes = {node.name: node for node in graph_def.node}
    if input_layer:
        name = tensor_name(input_layer)
        if name.split(':')[0] not in nodes:
            raise ToolError(f'no tensor {input_layer} in {path}')
    else:
        name = _default_entry(nodes, graphs.ancestors(nodes, [output]), graph, path)
    tensor = get_tensor(graph, name, path)
    if tensor.dtype == tf.string:
        return InputSpec(name, encoded=True, scalar=tensor.shape.rank == 0,
                         reason='decoded by the graph itself')
    if tensor.shape.rank != 4:
        raise ToolError(f'{name} in {path} is not an image input (shape {tensor.shape})')
    detected = _normalization(nodes, name.split(':')[0])
    if detected is None and (mean is None or std is None):
        raise ToolError(f'cannot tell how {name} in {path} expects pixel values: give '
                        '--input_mean and --input_std')
    chosen, reason = detected or ((mean, std), '')
    expected = None
    if mean is not None or std is not None:
        chosen = (chosen[0] if mean is None else mean, chosen[1] if std is None else std)
        reason = 'from --input_mean/--input_std'
        if detected and not same_normalization(chosen, detected[0]):
            expected = detected[0]
    return InputSpec(name, size=_image_size(tensor, name, path, size), batch=tensor.shape[0],
                     mean=chosen[0], std=chosen[1], reason=reason, expected=expected)


def get_tensor(graph: tf.Graph, name: str, path: str) -> tf.Tensor:
    try:
        return graph.get_tensor_by_name(name)
    except (KeyError, ValueError):
        raise ToolError(f'no tensor {name} in {path}') from None


def size_conflict(spec: InputSpec, size: Optional[Tuple[int, int]]) -> bool:
    return bool(size and spec.size and tuple(size) != tuple(spec.size))


def _default_entry(nodes: Dict, ancestors: Set[str], graph: tf.Graph, path: str) -> str:
    if MODEL_INPUT in ancestors and _made_here(nodes):  # Past the conversions between the entry
        return MODEL_INPUT + ':0'  # points (retrain.export.frozen_graph): saves them every batch.
    for name in ('Placeholder', 'input', 'Mul'):
        if name in ancestors and graph.get_tensor_by_name(name + ':0').dtype.is_floating:
            return name + ':0'
    if 'DecodeJpeg/contents' in ancestors:
        return 'DecodeJpeg/contents:0'
    images = [name for name in ancestors if nodes[name].op == 'Placeholder'
              and graph.get_tensor_by_name(name + ':0').shape.rank == 4]
    if len(images) == 1:
        return images[0] + ':0'
    raise ToolError(f'cannot tell the image input of {path}: name it with --input_layer')


def _normalization(nodes: Dict, name: str) -> Optional[Tuple[Tuple[float, float], str]]:
    """(mean, std) the graph implies for the entry node `name`, with the evidence; or None."""
    if name == 'Placeholder':
        return UNIT, 'Placeholder of TF Hub-era graphs and this project'
    if name == MODEL_INPUT and _made_here(nodes):
        return UNIT, "this project's model input, as Placeholder without its conversions"
    in_graph = _in_graph_normalization(nodes, name)
    if in_graph:
        return in_graph, 'read from the graph\'s Sub/Mul constants'
    if name in ('input', 'Mul'):
        if any(node.startswith(_SLIM_SCOPES) for node in nodes):
            return SLIM_CENTERED, 'slim base network: how it and Poets-era bottlenecks were made'
        return CLASSIC_CENTERED, 'classic label_image default for input/Mul'
    return None


def _in_graph_normalization(nodes: Dict, name: str) -> Optional[Tuple[float, float]]:
    """Matches `(x - mean) * scale` or `(x - mean) / std` ending at `name` (through Identity)."""
    node = nodes.get(name)
    while node is not None and node.op in _PASS_THROUGH and node.input:
        node = nodes.get(graphs.node_name(node.input[0]))
    if node is None or node.op not in ('Mul', 'RealDiv', 'Div') or len(node.input) != 2:
        return None
    first, second = (nodes.get(graphs.node_name(i)) for i in node.input)
    scale_node, sub = (first, second) if node.op == 'Mul' and _scalar(first) is not None \
        else (second, first)
    scale = _scalar(scale_node)
    if scale is None or sub is None or sub.op != 'Sub' or len(sub.input) != 2:
        return None
    mean = _scalar(nodes.get(graphs.node_name(sub.input[1])))
    if mean is None or scale == 0:
        return None
    return mean, (1.0 / scale if node.op == 'Mul' else scale)


def _scalar(node) -> Optional[float]:
    if node is None or node.op != 'Const':
        return None
    value = tf.make_ndarray(node.attr['value'].tensor)
    return float(value) if value.size == 1 else None


def _image_size(tensor: tf.Tensor, name: str, path: str,
                size: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    height, width = tensor.shape[1], tensor.shape[2]
    if height and width:
        return within_budget((int(height), int(width)), name, path)
    if size:
        return within_budget(tuple(size), name, path)
    raise ToolError(f'{name} in {path} takes images of any size: give --input_height and '
                    '--input_width')


def within_budget(size: Tuple[int, int], name: str, path: str) -> Tuple[int, int]:
    """`size` (height, width) of the images input `name` of `path` takes; ToolError when they
    are over the pixel budget every image is decoded within (a batch would not fit in memory)."""
    if size[0] * size[1] > image_io.PIXEL_BUDGET:
        raise ToolError(f'{name} of {path} takes images of {size[1]}x{size[0]} pixels, over the '
                        f'limit of {image_io.PIXEL_BUDGET:,} pixels')
    return size

