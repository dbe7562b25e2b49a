"""Opening `.tflite` files: checked before any interpreter sees them, then run by LiteRT.

An interpreter trusts its file: TensorFlow's dies with a segmentation fault on garbage behind a
TFL3 identifier and makes nonsense of a truncated file. So a file is read once and parsed with
the schema TensorFlow ships (its generated object API reads every table and vector and fails on
anything out of bounds); the indices the interpreter follows (tensors, buffers, operator codes,
subgraphs) and the external buffer ranges are checked; only then do those same bytes go to an
interpreter. The op names come from the parsed file as well, so the safety check also comes
before any interpreter (and needs no private interpreter API).

Models run on LiteRT (ai-edge-litert), the successor of `tf.lite.Interpreter`, which is
deprecated and says so on every use; TensorFlow's interpreter is only the fallback where LiteRT
is not installed.
"""
import dataclasses
import struct
import warnings
from typing import Iterable, List, Optional

import tensorflow as tf

from retrain.common.errors import ToolError
from retrain.common.fileio import failure_reason
from retrain.common.quiet_tensorflow import c_stderr_hidden
from retrain.common.tf_internals import tflite_schema as schema
from retrain.export import tflite_metadata

_IDENTIFIER = b'TFL3'
_SCHEMA_VERSION = 3
_BUILTIN_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
                  if not name.startswith('_')}


@dataclasses.dataclass(frozen=True)
class TFLiteFile:
    """A checked model: its bytes (what the interpreter gets), the names of its ops, and the op
    that makes its first output (past (de)quantizing and reshaping): LOGISTIC for a sigmoid."""
    path: str
    content: bytes
    op_names: List[str]
    output_op: str


def is_tflite(path: str) -> bool:
    """Whether the file says it is a TensorFlow Lite model (its TFL3 identifier), whatever its
    name: `model.lite` or a staged temporary is one as much as `model.tflite`."""
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            return f.read(8)[4:8] == _IDENTIFIER
    except tf.errors.OpError:
        return False  # Whoever reads it next says why it cannot be read.


def read(path: str) -> TFLiteFile:
    """The checked model; one-line ToolError naming the file and what is wrong with it."""
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            content = f.read()
    except tf.errors.OpError as e:
        raise ToolError(f'cannot read {path}: {failure_reason(e, path)}') from None
    if len(content) < 8 or content[4:8] != _IDENTIFIER:
        _invalid(path, 'no TFL3 identifier')
    try:
        model = schema.ModelT.InitFromPackedBuf(content, 0)
    except Exception:  # noqa: BLE001  The generated reader raises many kinds.
        _invalid(path, 'damaged or truncated')
    problem = _structure_problem(model, len(content))
    if problem:
        _invalid(path, problem)
    op_names = [_op_name(code) for code in model.operatorCodes or []]
    return TFLiteFile(path, content, op_names, _output_op(model, op_names))


def metadata(content: bytes) -> Optional[tflite_metadata.Metadata]:
    """The TensorFlow Lite metadata of a file's bytes; None if it has none. ValueError if it has
    some that cannot be read (its flatbuffer is not the schema's)."""
    try:
        return tflite_metadata.read_metadata(content)
    except (IndexError, ValueError, struct.error, UnicodeDecodeError) as e:
        raise ValueError(f'unreadable metadata: {e}') from None


def carried_labels(model: TFLiteFile) -> Optional[List[str]]:
    """The labels a file carries in its metadata (retrain and compat convert put them there for
    MediaPipe Tasks), in score order; None where it has none, or none that can be read."""
    try:
        found = metadata(model.content)
    except ValueError:
        return None
    return list(found.labels) if found and found.labels else None


def interpreter(model: TFLiteFile):
    """An interpreter of the model (LiteRT; TensorFlow's where LiteRT is not installed).

    Raises ValueError or RuntimeError as the interpreters do.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        with warnings.catch_warnings():  # Its deprecation notice is not the user's concern.
            warnings.simplefilter('ignore')
            return tf.lite.Interpreter(model_content=model.content)
    return Interpreter(model_content=model.content)


def allocate(interpreter) -> None:
    """interpreter.allocate_tensors(), without the runtime's "INFO: Created TensorFlow Lite
    XNNPACK delegate for CPU." that its C++ side prints on stderr, past Python's logging."""
    with c_stderr_hidden():
        interpreter.allocate_tensors()


def _invalid(path: str, reason: str) -> None:
    raise ToolError(f'not a TensorFlow Lite model: {path} ({reason})')


def _structure_problem(model, size: int) -> str:
    """What an interpreter would follow out of bounds, in words; '' when nothing."""
    if model.version != _SCHEMA_VERSION:
        return f'schema version {model.version}, not {_SCHEMA_VERSION}'
    subgraphs, buffers = model.subgraphs or [], model.buffers or []
    if not subgraphs:
        return 'no subgraph'
    for buffer in buffers:
        if buffer.offset > 1 and buffer.offset + buffer.size > size:
            return 'a buffer lies beyond the end of the file'
    for subgraph in subgraphs:
        tensors = subgraph.tensors or []
        if any(not 0 <= t.buffer < max(len(buffers), 1) for t in tensors):
            return 'a tensor names a buffer that does not exist'
        if any(d < 0 for t in tensors for d in _ints(t.shape)):
            return 'a tensor has a negative size'
        if not _within(_ints(subgraph.inputs) + _ints(subgraph.outputs), len(tensors)):
            return 'a subgraph names a tensor that does not exist'
        for operator in subgraph.operators or []:
            if not 0 <= operator.opcodeIndex < len(model.operatorCodes or []):
                return 'an operator has no operator code'
            used = _ints(operator.inputs) + _ints(operator.outputs) + _ints(operator.intermediates)
            if not _within([i for i in used if i != -1], len(tensors)):  # -1: optional, absent.
                return 'an operator names a tensor that does not exist'
            options = (operator.builtinOptions, getattr(operator, 'builtinOptions2', None))
            if not _within([i for o in options for i in _subgraph_indices(o)], len(subgraphs)):
                return 'an operator names a subgraph that does not exist'
    for signature in model.signatureDefs or []:
        if not 0 <= signature.subgraphIndex < len(subgraphs):
            return 'a signature names a subgraph that does not exist'
    return ''


def _ints(values) -> List[int]:
    return [] if values is None else [int(v) for v in values]


def _within(indices: Iterable[int], count: int) -> bool:
    return all(0 <= i < count for i in indices)


def _subgraph_indices(options) -> List[int]:
    """The subgraphs a control-flow op runs (WHILE's cond/body, IF's branches, CALL_ONCE ...)."""
    return [value for name, value in getattr(options, '__dict__', {}).items()
            if name.endswith('SubgraphIndex') and isinstance(value, int)]


_PASS_THROUGH = ('QUANTIZE', 'DEQUANTIZE', 'RESHAPE')


def _output_op(model, op_names: List[str]) -> str:
    """The op making the main subgraph's first output, walking back through _PASS_THROUGH."""
    subgraph = model.subgraphs[0]
    if not _ints(subgraph.outputs):
        return ''
    makers = {output: op for op in subgraph.operators or [] for output in _ints(op.outputs)}
    tensor, name = _ints(subgraph.outputs)[0], ''
    for _ in range(len(makers) + 1):  # A chain, at most every op once.
        op = makers.get(tensor)
        if op is None:
            return name
        name = op_names[op.opcodeIndex]
        if name not in _PASS_THROUGH or not _ints(op.inputs):
            return name
        tensor = _ints(op.inputs)[0]
    return name


def _op_name(code) -> str:
    """As the interpreters name ops: the builtin's name (CONV_2D), or the custom op's (FlexFoo)."""
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)  # The schema keeps both.
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode or b''
        return custom.decode('utf-8', 'replace') if isinstance(custom, bytes) else str(custom)
    return _BUILTIN_NAMES.get(builtin, f'builtin {builtin}')
