"""retrain.features.extractors: the frozen module is the same graph, byte for byte, every run."""
import random

import numpy as np
import tensorflow as tf

from retrain.features.extractors import canonical


def _frozen_like(numbers, seed: int) -> tf.compat.v1.GraphDef:
    """What freezing a loaded SavedModel gives: constants named by numbers that change from run
    to run, read by nodes whose names do not, listed in an order that changes too."""
    graph = tf.compat.v1.GraphDef()
    image = graph.node.add(name='images', op='Placeholder')
    image.attr['dtype'].type = tf.float32.as_datatype_enum
    previous = 'images'
    for index, number in enumerate(numbers):
        value = graph.node.add(name=str(number), op='Const')
        value.attr['dtype'].type = tf.float32.as_datatype_enum
        value.attr['value'].tensor.CopyFrom(tf.make_tensor_proto(np.float32(index + 1)))
        read = graph.node.add(name=f'Func/input/_{index}', op='Identity', input=[str(number)])
        read.attr['T'].type = tf.float32.as_datatype_enum
        add = graph.node.add(name=f'add_{index}', op='AddV2',
                             input=[previous, f'Func/input/_{index}:0', f'^{number}'])
        add.attr['T'].type = tf.float32.as_datatype_enum
        previous = add.name
    nodes = list(graph.node)
    random.Random(seed).shuffle(nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    return graph


def _run(graph_def: tf.compat.v1.GraphDef) -> float:
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run('add_2:0', {'images:0': 0.5})


def test_numbered_constants_and_node_order_become_the_same_in_every_run():
    """A --random_seed run with the real MobileNet V2 module wrote other bytes each time."""
    one, other = _frozen_like([13661, 13785, 13797], 0), _frozen_like([14103, 14123, 13905], 1)
    assert one.SerializeToString() != other.SerializeToString()
    same = canonical(one).SerializeToString(deterministic=True)
    assert same == canonical(other).SerializeToString(deterministic=True)
    assert not [node.name for node in canonical(one).node if node.name.isdigit()]
    assert _run(canonical(one)) == _run(one) == 0.5 + 1 + 2 + 3

