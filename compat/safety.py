"""A graph is code: which ops an image classifier may run, checked before anything runs.

TensorFlow graphs can read and write files (`ReadFile`, `WriteFile`, `Save*`, `Restore*`,
readers), run Python (`PyFunc`), print to files (`PrintV2`) or reach the network and the host.
None of that is needed to classify an image, so before a graph from a file is run its ops, and
those of every function in its library, are checked against an allowlist of what image
classifiers of every generation use. Anything else is refused by name unless the user says
`--allow_unsafe_ops`.
"""
from typing import Iterable, List, Optional, Set

import tensorflow as tf

from retrain.errors import RetrainError

_PLUMBING = """Const Identity IdentityN NoOp Placeholder PlaceholderWithDefault StopGradient
    PreventGradient Snapshot Switch Merge Enter Exit NextIteration LoopCond If StatelessIf
    While StatelessWhile Case StatelessCase PartitionedCall StatefulPartitionedCall
    ReadVariableOp VarHandleOp VariableV2 Variable VarIsInitializedOp Assert CheckNumerics
    EnsureShape"""
_ARITHMETIC = """Add AddV2 AddN Sub Mul MulNoNan Div RealDiv DivNoNan FloorDiv FloorMod Mod Neg
    Abs Sign Square Sqrt Rsqrt Reciprocal Exp Expm1 Log Log1p Pow Maximum Minimum
    SquaredDifference Floor Ceil Round Rint Erf Tanh Sigmoid Sin Cos ClipByValue BiasAdd
    BiasAddV1 MatMul BatchMatMul BatchMatMulV2 BatchMatMulV3 Einsum Sum Mean Max Min Prod
    All Any ArgMax ArgMin TopKV2 Cumsum Less LessEqual Greater GreaterEqual Equal NotEqual
    LogicalAnd LogicalOr LogicalNot Select SelectV2 IsFinite IsNan"""
_NN = """Relu Relu6 Elu Selu LeakyRelu Softplus Softsign Softmax LogSoftmax Conv2D
    DepthwiseConv2dNative Conv2DBackpropInput Conv3D AvgPool MaxPool MaxPoolV2 AvgPool3D
    MaxPool3D FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 BatchNormWithGlobalNormalization
    LRN L2Loss _FusedConv2D _FusedMatMul _FusedBatchNormEx"""
_SHAPES = """Shape ShapeN Size Rank Reshape Squeeze ExpandDims Transpose ConcatV2 Concat Pack
    Unpack Split SplitV Slice StridedSlice Tile Pad PadV2 MirrorPad Fill ZerosLike OnesLike
    Range Cast Bitcast GatherV2 Gather GatherNd Where BroadcastTo BroadcastArgs
    SpaceToBatchND BatchToSpaceND SpaceToDepth DepthToSpace ReverseV2 OneHot"""
_IMAGES = """DecodeJpeg DecodeAndCropJpeg DecodePng DecodeGif DecodeBmp DecodeImage ResizeBilinear
    ResizeBicubic ResizeNearestNeighbor ResizeArea CropAndResize ExtractGlimpse
    AdjustContrastv2 RGBToHSV HSVToRGB"""
_QUANTIZED = """Dequantize QuantizeV2 QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
    QuantizeAndDequantizeV4 Requantize RequantizationRange QuantizedConv2D QuantizedRelu
    QuantizedRelu6 QuantizedBiasAdd QuantizedMatMul QuantizedAvgPool QuantizedMaxPool
    QuantizedReshape QuantizedConcat QuantizedAdd QuantizedMul
    QuantizedBatchNormWithGlobalNormalization QuantizedResizeBilinear FakeQuantWithMinMaxVars
    FakeQuantWithMinMaxVarsPerChannel FakeQuantWithMinMaxArgs"""

ALLOWED_OPS = frozenset(' '.join([_PLUMBING, _ARITHMETIC, _NN, _SHAPES, _IMAGES,
                                  _QUANTIZED]).split())


class UnsafeGraphError(RetrainError):
    """The graph uses ops an image classifier has no business running."""


def unsafe_ops(graph_def: tf.compat.v1.GraphDef) -> List[str]:
    """Sorted names of the op types in the graph or its function library not on the allowlist."""
    functions = {f.signature.name for f in graph_def.library.function}
    ops: Set[str] = set(_op_types(graph_def.node))
    for function in graph_def.library.function:
        ops.update(_op_types(function.node_def))
    return sorted(op for op in ops if op not in ALLOWED_OPS and op not in functions)


def reachable_unsafe_ops(graph_def: tf.compat.v1.GraphDef, outputs: Iterable[str]) -> List[str]:
    """Like unsafe_ops, for what computing `outputs` can run: their ancestors and every function
    those call. For SavedModels, whose graphs also hold the save/restore machinery of loading."""
    nodes = {node.name: node for node in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    ops: Set[str] = set()
    stack = [_node_name(name) for name in outputs]
    seen: Set[str] = set()
    called: List[str] = []
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        ops.add(nodes[name].op)
        called.extend(_called_functions(nodes[name], functions))
        stack.extend(_node_name(i) for i in nodes[name].input)
    done: Set[str] = set()
    while called:
        function = called.pop()
        if function in done:
            continue
        done.add(function)
        for node in functions[function].node_def:
            ops.add(node.op)
            called.extend(_called_functions(node, functions))
    return sorted(op for op in ops if op not in ALLOWED_OPS and op not in functions)


def check_ops(graph_def: tf.compat.v1.GraphDef, path: str, allow_unsafe_ops: bool,
              outputs: Optional[Iterable[str]] = None) -> None:
    """Raises UnsafeGraphError naming the offending ops, unless the user allowed them.

    With `outputs`, only what computing them can run is checked (see reachable_unsafe_ops).
    """
    refused = unsafe_ops(graph_def) if outputs is None else reachable_unsafe_ops(graph_def,
                                                                                  outputs)
    _refuse(path, refused, allow_unsafe_ops)


def check_tflite_ops(op_names: Iterable[str], path: str, allow_unsafe_ops: bool) -> None:
    """TFLite's builtin ops are pure computation; TensorFlow ops inside (`Flex<Op>`) are not."""
    flex = {name[len('Flex'):] for name in op_names if name.startswith('Flex')}
    _refuse(path, sorted(flex - ALLOWED_OPS), allow_unsafe_ops)


def _refuse(path: str, refused: List[str], allow_unsafe_ops: bool) -> None:
    if refused and not allow_unsafe_ops:
        raise UnsafeGraphError(
            f'refusing to run {path}: it uses ops that an image classifier does not need and '
            f'that may touch files, the network or the host: {", ".join(refused)} '
            '(use --allow_unsafe_ops if you trust it)')


def _op_types(nodes: Iterable) -> Iterable[str]:
    return (node.op for node in nodes)


def _called_functions(node, functions) -> List[str]:
    """Library functions a node runs: as its op type or through function-valued attributes."""
    names = [node.op] if node.op in functions else []
    for value in node.attr.values():
        names.extend(f.name for f in ([value.func] if value.HasField('func') else value.list.func))
    return [name for name in names if name in functions]


def _node_name(tensor: str) -> str:
    return tensor.lstrip('^').split(':')[0]
