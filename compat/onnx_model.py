"""Opening `.onnx` files: checked before ONNX Runtime sees them, then run by it on the CPU.

A file is read once and parsed; retrain.export.onnx_contract.file_access_problem must find
nothing (standard ops only, no external data) before the same bytes go to a session: a model
that could touch files is refused, whatever --allow_unsafe_ops says (ONNX Runtime could not run
the custom ops it would take anyway). Sessions
are made from the bytes, not the path, so even a check that missed something could not make the
runtime open another file. Needs the onnx extra (onnx, onnxruntime).
"""
import dataclasses
import re
from typing import Dict, List, Optional

import tensorflow as tf

from retrain.common import interrupts
from retrain.common.errors import ToolError
from retrain.common.fileio import failure_reason
from retrain.export import onnx_contract

_SOURCE_LOCATION = re.compile(r'/onnxruntime_src/\S+:\d+ [^(]*\([^)]*\)\S* ')
# Ops that pass scores on unchanged, looked past to find the op that makes them.
_PASS_THROUGH = frozenset(['Identity', 'Reshape', 'Squeeze', 'Flatten', 'Cast'])


def is_onnx(path: str) -> bool:
    """Whether the file begins as an ONNX model does (field 1, ir_version: 3, from 2017, or later),
    whatever its name. No GraphDef begins so (its field 1 is a message, never a number); a
    SavedModel's saved_model.pb begins with its schema version, 1."""
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            head = f.read(2)
    except tf.errors.OpError:
        return False  # Whoever reads it next says why it cannot be read.
    return len(head) == 2 and head[0] == 0x08 and 3 <= head[1] < 0x80


@dataclasses.dataclass(frozen=True)
class OnnxFile:
    """A parsed model: its bytes (what a session gets), the model, the op that makes its first
    output (Softmax, Sigmoid ...; '' where unknown) and why it may not run ('' when it may)."""
    path: str
    content: bytes
    model: object  # onnx.ModelProto
    output_op: str
    problem: str

    @property
    def metadata(self) -> Dict[str, str]:
        return onnx_contract.read_metadata(self.model)

    @property
    def labels(self) -> Optional[List[str]]:
        """The labels the file carries (metadata_props `labels`), None without them."""
        text = self.metadata.get(onnx_contract.LABELS)
        return text.split('\n') if text else None


def _require_extra():
    try:
        # The optional onnx extra, imported when an .onnx file is read; Ctrl-C is held off
        # while onnx's C++ extension loads (cut short there, it aborts the process).
        with interrupts.deferred():
            import onnx
            import onnxruntime
    except ImportError:
        raise ToolError('reading .onnx files needs ONNX Runtime: '
                        f'{onnx_contract.EXTRA_HINT}') from None
    return onnx, onnxruntime


def read(path: str) -> OnnxFile:
    """The parsed model; one-line ToolError naming the file when it is not one."""
    onnx, _ = _require_extra()
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            content = f.read()
    except tf.errors.OpError as e:
        raise ToolError(f'cannot read {path}: {failure_reason(e, path)}') from None
    try:
        model = onnx.ModelProto.FromString(content)
    except Exception:  # noqa: BLE001  protobuf raises DecodeError, RuntimeWarning, ValueError.
        model = None
    if model is None or not model.graph.output or not model.graph.input:
        raise ToolError(f'not an ONNX model: {path}')
    return OnnxFile(path, content, model, _output_op(model),
                    onnx_contract.file_access_problem(model))


def session(model: OnnxFile):
    """An ONNX Runtime session of the model's bytes, on the CPU; refused if it has a problem."""
    if model.problem:
        raise ToolError(f'refusing to run {model.path}: {model.problem}')
    _, onnxruntime = _require_extra()
    try:
        return onnxruntime.InferenceSession(model.content, providers=['CPUExecutionProvider'])
    except Exception as e:  # noqa: BLE001  ONNX Runtime raises its own exception types.
        raise ToolError(f'cannot run {model.path}: {_runtime_reason(e)}') from None


def _runtime_reason(error: Exception) -> str:
    """The first line of ONNX Runtime's error without the source location and C++ signature it
    may put before the reason (`/onnxruntime_src/...h:46 void onnxruntime::...(...) `), which
    would fill the line and cut the reason off; at most 300 characters."""
    line = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
    return _SOURCE_LOCATION.sub('', line)[:300]


def _output_op(model) -> str:
    """The op type making the first output, past ops that pass scores on unchanged."""
    producers = {output: node for node in model.graph.node for output in node.output}
    name = model.graph.output[0].name
    while name in producers:
        node = producers[name]
        if node.op_type not in _PASS_THROUGH or not node.input:
            return node.op_type
        name = node.input[0]
    return ''
