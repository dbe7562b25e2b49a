"""The retrained classifier as a TensorFlow Lite model, for phones and small devices.

The model takes a float image [1, H, W, 3] in [0, 1] and returns the softmax scores. It is
converted from a frozen graph cut at that image: for a run, `classifier_graph` joins the same
frozen extractor and layer that make up the exported graph, without the historical entry points
(the (x - 128) / 128 round trip they need costs int8 MobileNet V2 most of its accuracy); any other
frozen classifier is cut at `Placeholder:0`. Quantization:
  none     float32 weights and arithmetic;
  dynamic  int8 weights, float activations (about 4x smaller, no data needed);
  int8     int8 weights and activations, calibrated on representative training images; the
           input and output stay float32, so callers feed and read the same tensors as always.
A single-label run's model has a second output, the unknown score [1, 1] (retrain.train.unknown:
above 0, the image is unlike the training images), named in the metadata; not an int8 one
(`carries_judgement`).
Every file carries TensorFlow Lite metadata (retrain.export.tflite_metadata), so MediaPipe Tasks
run it as it is.
"""
from typing import Callable, Iterable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from retrain.common import fileio
from retrain.common.errors import ToolError, error_summary
from retrain.common.graph_names import UNIT_INPUT, UNKNOWN_SCORE, judges
from retrain.common.quiet_tensorflow import c_stderr_hidden
from retrain.data import image_io
from retrain.export import frozen_graph, tflite_metadata
from retrain.export.outputs import Trained
from retrain.features.extractors import FeatureExtractor
from retrain.train import unknown
from retrain.train.heads import Head

QUANTIZATIONS = ('none', 'dynamic', 'int8')
MODEL_NAME = 'image classifier'
# Calibration images for int8: enough to see every class's typical ranges, few enough to be quick.
REPRESENTATIVE_IMAGES = 100


def classifier_graph(extractor: FeatureExtractor, head: Head,
                     final_tensor_name: str = 'final_result',
                     judgement: Optional[unknown.Fitted] = None) -> tf.compat.v1.GraphDef:
    """Image `Placeholder` [N, H, W, 3] in [0, 1] -> frozen extractor -> new layer -> softmax
    (and the unknown judgement's score when given one)."""
    frozen = extractor.freeze()  # Eagerly, before building a graph.
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, extractor.input_spec().shape,
                                         name='Placeholder')
        bottlenecks = frozen_graph.import_extractor(frozen, image)
        logits = frozen_graph.add_final_layer(bottlenecks, head, final_tensor_name)
        if judgement is not None:
            unknown.tf_score(judgement, bottlenecks, logits)
    return graph.as_graph_def()


def carries_judgement(judged: bool, quantize: str) -> bool:
    """Whether the file of a classifier that judges (`judged`) has the unknown score: not an
    int8 one, whose ranges are calibrated on training images, so the score of an unlike image is
    clipped below the operating point (measured: an int8 file called none of 398 ants and bees
    photos unknown, where its graph called 73%; a dynamic one agreed with its graph on 98.6% of
    those and 500 flower photos together)."""
    return judged and quantize != 'int8'


def _converter(graph_def: tf.compat.v1.GraphDef, image_size: Tuple[int, int],
               output_tensor: str, input_tensor: str, judged: bool) -> tf.lite.TFLiteConverter:
    """A converter for the classifier from image [1, H, W, 3] in [0, 1] to the scores, and to
    the unknown score [1, 1] (second output) where the graph carries one.

    The graph is imported with a fixed-shape input in place of `input_tensor`, so every shape in
    it is static (as TensorFlow Lite's kernels want); what used to feed that tensor is pruned.
    """
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [1, image_size[0], image_size[1], 3],
                                         name='image')
        tf.graph_util.import_graph_def(graph_def, input_map={input_tensor: image}, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            outputs = [graph.get_tensor_by_name(output_tensor)]
            if judged:  # [1, 1]: a score per image, in the scores' layout.
                outputs.append(tf.reshape(graph.get_tensor_by_name(f'{UNKNOWN_SCORE}:0'),
                                          [-1, 1], name=UNKNOWN_SCORE + '_output'))
            return tf.compat.v1.lite.TFLiteConverter.from_session(session, [image], outputs)


def _weights_dequantized(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """`graph_def` with each Dequantize of constants replaced by its float values.

    The classic `mobilenet_*_quantized` graphs (and graphs retrained on them) keep weights as
    quint8 constants that TensorFlow's Dequantize op turns into floats as the graph runs;
    TensorFlow Lite has no such op, so its converter refuses them. The values are the same."""
    constants = {node.name for node in graph_def.node if node.op == 'Const'}
    names = [node.name for node in graph_def.node if node.op == 'Dequantize'
             and all(name in constants for name in node.input)]
    if not names:
        return graph_def
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            values = dict(zip(names, session.run([f'{name}:0' for name in names])))
    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    for node in result.node:
        if node.name in values:
            node.op = 'Const'
            del node.input[:]
            node.attr.clear()
            node.attr['dtype'].type = tf.float32.as_datatype_enum
            node.attr['value'].tensor.CopyFrom(tf.make_tensor_proto(values[node.name]))
    return result


# What the quantizer prints on stderr: "fully_quantize: 0, inference_type: 6, ...".
_QUANTIZER_NOISE = r'fully_quantize: \d'


def convert(graph_def: tf.compat.v1.GraphDef, image_size: Tuple[int, int],
            output_tensor: str = 'final_result:0', quantize: str = 'none',
            representative: Optional[Callable[[], Iterable[np.ndarray]]] = None,
            input_tensor: str = f'{UNIT_INPUT}:0') -> bytes:
    """The flatbuffer of the classifier; `representative()` yields [1, H, W, 3] images (int8)."""
    if quantize not in QUANTIZATIONS:
        raise ToolError(f'--tflite_quantize must be one of {", ".join(QUANTIZATIONS)}, '
                        f'got {quantize!r}')
    converter = _converter(_weights_dequantized(graph_def), image_size, output_tensor,
                           input_tensor, carries_judgement(judges(graph_def), quantize))
    if quantize != 'none':
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == 'int8':
        if representative is None:
            raise ToolError('int8 quantization needs representative images')
        converter.representative_dataset = lambda: ([image] for image in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with c_stderr_hidden(noise=_QUANTIZER_NOISE):
            return converter.convert()
    except Exception as e:  # noqa: BLE001  ConverterError, ValueError, RuntimeError ...
        raise ToolError(f'cannot convert the classifier to TensorFlow Lite: '
                        f'{type(e).__name__}: {error_summary(e)}') from None


def representative_images(paths: Sequence[str], image_size: Tuple[int, int],
                          count: int = REPRESENTATIVE_IMAGES, seed: Optional[int] = None,
                          allow_truncated: bool = False) -> Callable[[], Iterable[np.ndarray]]:
    """Up to `count` of `paths`, spread over them at random, decoded as caching decoded them
    (`allow_truncated`: see image_io.decode); files that no longer decode are left out."""
    rng = np.random.default_rng(seed)
    chosen = [paths[i] for i in sorted(rng.choice(len(paths), size=min(count, len(paths)),
                                                  replace=False))]

    def images():
        for _, batch, _ in image_io.image_batches(chosen, image_size, 1, allow_truncated,
                                               ordered=True):
            yield batch.numpy()
    return images


def write_tflite(path: str, graph_def: tf.compat.v1.GraphDef, image_size: Tuple[int, int],
                 output_tensor: str = 'final_result:0', quantize: str = 'none',
                 training_paths: Sequence[str] = (), seed: Optional[int] = None,
                 allow_truncated: bool = False, labels: Optional[Sequence[str]] = None,
                 description: str = 'An image classifier retrained with retrain.') -> None:
    """Converts the classifier, adds its metadata (`labels` name the classes, in order) and
    writes it atomically to `path` (the caller logs it: `path` may be a temporary).
    `allow_truncated`: how the training images were decoded."""
    representative = (representative_images(training_paths, image_size, seed=seed,
                                            allow_truncated=allow_truncated)
                      if quantize == 'int8' and len(training_paths) else None)
    model = tflite_metadata.add_metadata(
        convert(graph_def, image_size, output_tensor, quantize, representative), MODEL_NAME,
        description, labels, judged=carries_judgement(judges(graph_def), quantize))
    fileio.atomic_write(path, model)


def write_output(path: str, trained: Trained) -> None:
    config = trained.config
    graph = classifier_graph(trained.extractor, trained.head, config.final_tensor_name,
                             trained.unknown)
    write_tflite(path, graph, trained.extractor.image_size, config.final_tensor_name + ':0',
                 config.tflite_quantize, trained.training_paths, config.random_seed,
                 allow_truncated=config.allow_truncated_images, labels=trained.labels,
                 description=f'A classifier of {len(trained.labels)} classes retrained on '
                 f'{trained.extractor.description}.')


def wrote_line(path: str, trained: Trained) -> str:
    quantize = trained.config.tflite_quantize
    quantization = 'float' if quantize == 'none' else f'{quantize} quantization'
    judged = trained.unknown is not None
    unjudged = (', without the unknown judgement: int8 would clip it'
                if judged and not carries_judgement(judged, quantize) else '')
    return (f'Wrote TensorFlow Lite model ({quantization}, {tf.io.gfile.stat(path).length} '
            f'bytes{unjudged}) to {path}')
