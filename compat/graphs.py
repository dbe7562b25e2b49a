"""Frozen GraphDefs in compat: which nodes computing a tensor runs, read from the GraphDef alone
(the safety and signature checks walk it before anything runs), and running a graph from
TensorFlow 2.

A frozen graph (read by retrain.features.graph_files) is imported into a `tf.compat.v1` graph
wrapped as a TF2 function, with the tensors to feed mapped to the function's arguments; the
result is an ordinary callable that works eagerly, inside tf.function and inside tf.data.
"""
from typing import Callable, Dict, Iterable, Optional, Sequence, Set

import tensorflow as tf


def graph_function(graph_def: tf.compat.v1.GraphDef, inputs: Sequence[str],
                   outputs: Sequence[str], graph: Optional[tf.Graph] = None) -> Callable:
    """A TF2 function feeding the tensors named `inputs` and returning those named `outputs`.

    Tensor names are those of the graph itself (`input:0`, `final_result:0`); `graph` is the
    graph already imported (imported_graph), to read their types and shapes from. Only what lies
    between the inputs and outputs runs. (TensorFlow's own `prune` of a wrapped function is
    slower to build, and each call of its result formats the whole input batch as text first.)
    """
    graph = graph or imported_graph(graph_def).graph
    feeds = [graph.get_tensor_by_name(name) for name in inputs]

    def run(*tensors):
        return tf.graph_util.import_graph_def(graph_def, input_map=dict(zip(inputs, tensors)),
                                              return_elements=list(outputs), name='graph')

    return tf.compat.v1.wrap_function(run, [tf.TensorSpec(t.shape, t.dtype) for t in feeds])


def imported_graph(graph_def: tf.compat.v1.GraphDef):
    """The graph imported once (names unchanged) into a wrapped function; nothing runs yet.

    Its `.graph` answers questions about the tensors (static shapes, producers).
    """
    def import_graph():
        tf.compat.v1.import_graph_def(graph_def, name='')

    return tf.compat.v1.wrap_function(import_graph, [])


def node_name(tensor: str) -> str:
    """`^name`, `name:1` or `name` -> `name`."""
    return tensor.lstrip('^').split(':')[0]


def ancestors(nodes: Dict, tensors: Iterable[str]) -> Set[str]:
    """Names of the nodes (in `nodes`, by name) that computing `tensors` runs, themselves included;
    control inputs count."""
    seen: Set[str] = set()
    stack = [node_name(tensor) for tensor in tensors]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(node_name(i) for i in nodes[name].input)
    return seen
