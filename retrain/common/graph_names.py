"""The node names of the exported frozen graph (built by retrain.export.frozen_graph), and the keys
of the SavedModel signatures.

Old clients feed the historical entry points by name and fetch `--final_tensor_name`; every other
node lives under one of a few scopes. The names are kept here, free of TensorFlow, so that the
CLI refuses a `--final_tensor_name` the graph could not carry before TensorFlow even loads: a
taken name would make TensorFlow rename the output silently (`input_1:0`), and a client asking
for the name it gave would get another tensor.
"""
import re

# The entry points, in the order of the chain (export's module doc says what each takes).
JPEG_INPUT = 'DecodeJpeg/contents'
UNIT_INPUT = 'Placeholder'
CENTERED_INPUTS = ('Mul', 'input')
MODEL_INPUT = 'module_input'
BOTTLENECK_INPUT = 'input_1/BottleneckInputPlaceholder'
# The judgement of single-label graphs (retrain.train.unknown): a score per image, above 0 when
# the image is unlike the training images, and that comparison; their ops under UNKNOWN_SCOPE.
UNKNOWN_SCORE = 'unknown_score'
UNKNOWN = 'unknown'
UNKNOWN_SCOPE = 'unknown_judgement'
# The (input, output) keys of a SavedModel's serving_default: retrain's, and those of
# make_image_classifier: its Keras model's layer names (as its SavedModels show them on
# TensorFlow 2.21 with tf_keras), which its users' clients name.
SAVED_MODEL_KEYS = ('image', 'prediction')
KERAS_MODEL_KEYS = ('input_1', 'dense')
# Scopes of the other nodes: pixel conversions, the frozen model, the new layer's variables.
SCOPES = ('decode_and_resize', 'center', 'uncenter', 'module', 'final_training_ops',
          UNKNOWN_SCOPE)

# TensorFlow's rule for the name of an op created at the top of a graph.
_NODE_NAME = re.compile(r'^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$')


def final_name_problem(name: str) -> str:
    """Why `name` cannot name the exported graph's output; '' when it can.

    TensorFlow compares node names without case: `Input` is as taken as `input`.
    """
    if not _NODE_NAME.match(name) or name.endswith('/'):
        return ('it is not a TensorFlow node name (letters, digits and . _ - / \\ >, starting '
                'with a letter, digit or dot, not ending with /)')
    taken = [n.lower() for n in (JPEG_INPUT, UNIT_INPUT, *CENTERED_INPUTS, MODEL_INPUT,
                                 BOTTLENECK_INPUT, UNKNOWN_SCORE, UNKNOWN, *SCOPES)]
    lowered = name.lower()  # Below an entry point too: TensorFlow names constants `Mul/y`.
    if lowered in taken or lowered.startswith(tuple(n + '/' for n in taken)):
        return 'the exported graph has a node or scope of that name already'
    return ''


def judges(graph_def) -> bool:
    """Whether a frozen graph (a GraphDef) carries the unknown judgement (retrain.train.unknown):
    every format written from it, and every reader of it, asks this."""
    return any(node.name == UNKNOWN_SCORE for node in graph_def.node)
