"""A graph is code: which ops an image classifier may run, checked before anything runs.

TensorFlow graphs can read and write files (`ReadFile`, `WriteFile`, `Save*`, `Restore*`,
readers), run Python (`PyFunc`), print to files (`PrintV2`) or reach the network and the host.
None of that is needed to classify an image, so before a graph from a file is run its ops, and
those of every function in its library, are checked against an allowlist of what image
classifiers of every generation use. Anything else is refused by name unless the user says
`--allow_unsafe_ops`.
"""
from typing import FrozenSet, Iterable, List, Set

import tensorflow as tf

from compat import graphs
from retrain.common.errors import ToolError
from retrain.common.tf_internals import meta_graph_pb2, variable_pb2

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
    AdjustContrastv2 RGBToHSV HSVToRGB ExtractJpegShape Substr StringJoin DecodeRaw StringFormat
    StringLength"""
_QUANTIZED = """Dequantize QuantizeV2 QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
    QuantizeAndDequantizeV4 Requantize RequantizationRange QuantizedConv2D QuantizedRelu
    QuantizedRelu6 QuantizedBiasAdd QuantizedMatMul QuantizedAvgPool QuantizedMaxPool
    QuantizedReshape QuantizedConcat QuantizedAdd QuantizedMul
    QuantizedBatchNormWithGlobalNormalization QuantizedResizeBilinear FakeQuantWithMinMaxVars
    FakeQuantWithMinMaxVarsPerChannel FakeQuantWithMinMaxArgs"""

ALLOWED_OPS = frozenset(' '.join([_PLUMBING, _ARITHMETIC, _NN, _SHAPES, _IMAGES,
                                  _QUANTIZED]).split())
# Loading a SavedModel may also set variables, and its saver's restore op read their values.
_VARIABLE_WRITES = frozenset(['Assign', 'AssignVariableOp'])
_RESTORING = _VARIABLE_WRITES | {'RestoreV2', 'Restore', 'RestoreSlice'}
_INIT_SIGNATURE = '__saved_model_init_op'
_INIT_COLLECTIONS = ('saved_model_main_op', 'legacy_init_op', 'table_initializer')
_RESOURCE_FUNCTIONS = ('_create_resource', '_initialize', '_destroy_resource')


class UnsafeGraphError(ToolError):
    """The graph uses ops an image classifier has no business running."""


def unsafe_ops(graph_def: tf.compat.v1.GraphDef) -> List[str]:
    """Sorted names of the op types in the graph or its function library not on the allowlist."""
    functions = {f.signature.name for f in graph_def.library.function}
    ops: Set[str] = set(_op_types(graph_def.node))
    for function in graph_def.library.function:
        ops.update(_op_types(function.node_def))
    return sorted(op for op in ops if op not in ALLOWED_OPS and op not in functions)


def reachable_unsafe_ops(graph_def: tf.compat.v1.GraphDef, outputs: Iterable[str],
                         functions: Iterable[str] = (),
                         also_allowed: FrozenSet[str] = frozenset()) -> List[str]:
    """Like unsafe_ops, for what computing `outputs` and calling the library `functions` can run:
    their ancestors and every function those call. For SavedModels, whose graphs also hold
    machinery that neither loading nor serving runs (saving, training)."""
    nodes = {node.name: node for node in graph_def.node}
    library = {f.signature.name: f for f in graph_def.library.function}
    reached = [nodes[name] for name in graphs.ancestors(nodes, outputs)]
    ops: Set[str] = set(_op_types(reached))
    called = [name for name in functions if name in library]
    for node in reached:
        called.extend(_called_functions(node, library))
    done: Set[str] = set()
    while called:
        function = called.pop()
        if function in done:
            continue
        done.add(function)
        for node in library[function].node_def:
            ops.add(node.op)
            called.extend(_called_functions(node, library))
    return sorted(op for op in ops
                  if op not in ALLOWED_OPS and op not in also_allowed and op not in library)


def saved_model_unsafe_ops(meta_graph: meta_graph_pb2.MetaGraphDef,
                           signature_key: str = 'serving_default') -> List[str]:
    """What loading a SavedModel and running its signature can run, read from the proto alone.

    Loading runs the init op (TF1 main_op or legacy_init_op, the `__saved_model_init_op`
    signature, else table and local variable initializers), the saver's restore op (which may also
    restore and assign, nothing else), and for TF2 objects the functions of their resources and
    saveables. Serving runs the signature's outputs.
    """
    graph_def = meta_graph.graph_def
    outputs = [t.name for key in (signature_key, _INIT_SIGNATURE)
               if key in meta_graph.signature_def
               for t in meta_graph.signature_def[key].outputs.values()]
    collections = meta_graph.collection_def
    for key in _INIT_COLLECTIONS:
        if key in collections:
            outputs.extend(collections[key].node_list.value)
    if 'local_variables' in collections:
        for serialized in collections['local_variables'].bytes_list.value:
            variable = variable_pb2.VariableDef()
            variable.ParseFromString(serialized)
            outputs.append(variable.initializer_name)
    found = set(reachable_unsafe_ops(graph_def, outputs, _loading_functions(meta_graph),
                                     _VARIABLE_WRITES))
    restore = meta_graph.saver_def.restore_op_name
    if restore:
        found.update(reachable_unsafe_ops(graph_def, [restore], also_allowed=_RESTORING))
    return sorted(found)


def _loading_functions(meta_graph: meta_graph_pb2.MetaGraphDef) -> List[str]:
    """Library functions that TF2 loading calls: resources' create/initialize/destroy and
    saveables' save/restore functions."""
    objects = meta_graph.object_graph_def
    ids = []
    for node in objects.nodes:
        if node.WhichOneof('kind') == 'resource':
            ids.extend(child.node_id for child in node.children
                       if child.local_name in _RESOURCE_FUNCTIONS)
        for saveable in node.saveable_objects.values():
            ids.extend((saveable.save_function, saveable.restore_function))
    names = []
    for node_id in ids:
        node = objects.nodes[node_id] if 0 <= node_id < len(objects.nodes) else None
        kind = node.WhichOneof('kind') if node else None
        if kind == 'function':
            names.extend(node.function.concrete_functions)
        elif kind == 'bare_concrete_function':
            names.append(node.bare_concrete_function.concrete_function_name)
    return names


def tflite_unsafe_ops(op_names: Iterable[str]) -> List[str]:
    """TFLite's builtin ops are pure computation; TensorFlow ops inside (`Flex<Op>`) are not."""
    flex = {name[len('Flex'):] for name in op_names if name.startswith('Flex')}
    return sorted(flex - ALLOWED_OPS)


def refuse(path: str, refused: List[str], allow_unsafe_ops: bool) -> None:
    """Raises UnsafeGraphError naming the `refused` ops, unless the user allowed them."""
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
