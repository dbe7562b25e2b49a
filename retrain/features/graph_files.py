"""Reading frozen GraphDef files of any generation.

Here in `retrain`, not in `compat`, because both need it (the classic architectures of
retrain.features.legacy_models are frozen graphs too) and `compat` builds on `retrain`, never the
reverse.
"""
import tensorflow as tf
from google.protobuf import message

from retrain.common.errors import ToolError


def load_graph_def(path: str) -> tf.compat.v1.GraphDef:
    """Parses a binary GraphDef; one-line ToolError when missing or not a graph."""
    if not tf.io.gfile.exists(path):
        raise ToolError(f'graph file not found: {path}')
    if tf.io.gfile.isdir(path):
        raise ToolError(f'not a TensorFlow graph: {path} (a directory)')
    with tf.io.gfile.GFile(path, 'rb') as f:
        return parse_graph_def(f.read(), path)


def parse_graph_def(data: bytes, source: str) -> tf.compat.v1.GraphDef:
    """Parses GraphDef bytes; "not a TensorFlow graph: <source>" when they are something else."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except (message.DecodeError, RuntimeWarning, ValueError):
        graph_def.Clear()
    if not graph_def.node:
        raise ToolError(f'not a TensorFlow graph: {source}')
    return graph_def
