"""`python -m compat inspect`: what a model is and how it would be run, without running it."""
from typing import List

import tensorflow as tf

from compat import classifier as models
from compat import graphs, onnx_model, safety, signature, tflite
from retrain.common.errors import ToolError
from retrain.common.graph_names import UNKNOWN_SCORE
from retrain.export import onnx_contract
from retrain.features import graph_files

ENTRY_POINTS = ('DecodeJpeg/contents', 'Placeholder', 'Mul', 'input',
                'input_1/BottleneckInputPlaceholder')


def inspect(path: str,
            overrides: models.Overrides = models.Overrides()) -> str:  # noqa: B008  Frozen.
    """A report on a model. Frozen graphs are only imported (importing runs nothing), so even
    graphs with unsafe ops can be inspected; SavedModels, .tflite and .onnx files are loaded only
    when their ops (read from the file) are safe, as loading a SavedModel runs some."""
    found = models.model_format(path)
    if found != models.FROZEN_GRAPH:
        unsafe = models.unsafe_ops(path)
        if unsafe:
            return (f'{path}: not loaded: loading or running it could touch files, the network '
                    f'or the host\n  unsafe ops: {", ".join(unsafe)}')
        model = models.load(path, overrides)
        described = model.describe() + '\n  unsafe ops: none'
        if found in (models.TFLITE, models.ONNX):
            described += '\n' + metadata_report(model)
        return described
    graph_def = graph_files.load_graph_def(path)
    lines = [f'graph: {path}',
             f'format: frozen GraphDef, {len(graph_def.node)} nodes, '
             f'{len(graph_def.library.function)} library functions',
             f'made by: {signature.generation(graph_def)}']
    unsafe = safety.unsafe_ops(graph_def)
    try:
        graph = graphs.imported_graph(graph_def).graph
    except (ValueError, tf.errors.OpError) as e:
        raise ToolError(f'cannot load graph {path}: {e}') from None
    names = {node.name for node in graph_def.node}
    lines.append('entry points: ' + (', '.join(
        _tensor(graph, name + ':0') for name in ENTRY_POINTS if name in names) or 'none known'))
    try:
        output = signature.find_output(graph_def, path, overrides.output_layer)
        output_op = signature.output_op(graph_def, output)
        described = [f'output: {_tensor(graph, output)}']
        if output_op == 'Sigmoid':
            described.append('multi-label (a sigmoid score per label)')
        if models.not_probabilities(output_op):
            described.append(models.not_probabilities(output_op))
        lines.append(', '.join(described))
        spec = signature.detect_input(graph_def, graph, output, path, overrides.input_layer,
                                      overrides.mean, overrides.std, overrides.size)
        lines.append(f'input size: {"x".join(map(str, spec.size)) if spec.size else "any"}')
        lines.append(f'preprocessing: {spec.describe()}')
        lines.append(f'unknown judgement: {_tensor(graph, UNKNOWN_SCORE + ":0")}, above 0: '
                     'unlike the training images' if UNKNOWN_SCORE in names
                     else models.NO_JUDGEMENT)
    except ToolError as e:
        lines.append(f'cannot classify with it as it is: {e}')
    lines.append(f'unsafe ops: {", ".join(unsafe) if unsafe else "none"}')
    lines.append('op counts: ' + ', '.join(f'{op} {count}' for op, count in _op_counts(graph_def)))
    return '\n'.join(lines)


def metadata_report(model: models.Classifier) -> str:
    """What the metadata of a .tflite or .onnx file says (what runtimes and apps go by)."""
    if model.format == models.ONNX:
        return onnx_metadata_report(model.path)
    return tflite_metadata_report(model.path)


def onnx_metadata_report(path: str) -> str:
    """The metadata_props of an .onnx file (retrain.export.onnx_contract), labels counted."""
    found = onnx_model.read(path).metadata
    if not found:
        return 'metadata: none'
    lines = ['metadata:']
    for key in sorted(found):
        value = found[key]
        if key == onnx_contract.LABELS:
            labels = value.split('\n')
            value = f'{len(labels)}: {", ".join(labels[:10])}{" ..." if len(labels) > 10 else ""}'
        lines.append(f'  {key}: {value}')
    return '\n'.join(lines)


def tflite_metadata_report(path: str) -> str:
    """What the metadata of a .tflite file says: what MediaPipe Tasks go by to run it."""
    with tf.io.gfile.GFile(path, 'rb') as f:
        try:
            found = tflite.metadata(f.read())
        except ValueError:
            return 'metadata: unreadable'
    return found.describe() if found else 'metadata: none (MediaPipe Tasks cannot run it as it is)'


def _tensor(graph: tf.Graph, name: str) -> str:
    tensor = graph.get_tensor_by_name(name)
    shape = 'unknown' if tensor.shape.rank is None else '[' + ', '.join(
        'N' if d is None else str(d) for d in tensor.shape.as_list()) + ']'
    return f'{name} ({tensor.dtype.name} {shape})'


def _op_counts(graph_def: tf.compat.v1.GraphDef) -> List:
    counts = {}
    for node in graph_def.node:
        counts[node.op] = counts.get(node.op, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
