"""Small frozen graphs of each generation, built with tf.compat.v1 the way the old tools did.

They share the old graphs' names and entry points but not their size, so tests run in seconds:
  inception_like  DecodeJpeg/contents -> DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear ->
                  Sub(128) -> Mul(1/128) -> ... pool_3/_reshape [1, D] -> final_result
  poets_like      input [1, H, W, 3] -> MobilenetV1/... -> final_result
  hub_like        Placeholder [N, H, W, 3] in [0, 1] -> module/... -> final_result
and the classic way of running them: a tf.compat.v1.Session fed as old label_image fed it.
"""
import os
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from conftest import retrain_args, run_module

SIZE = 24
CLASSES = 4
v1 = tf.compat.v1


def _features(images: tf.Tensor, scale: float) -> tf.Tensor:
    """Conv + pooling + mean colour: enough that different images get different scores."""
    rng = np.random.default_rng(1)
    kernel = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 6)).astype(np.float32), name='weights')
    conv = tf.nn.relu6(tf.nn.conv2d(images * scale, kernel, [1, 2, 2, 1], 'SAME'))
    pooled = tf.reduce_mean(conv, axis=[1, 2])
    return tf.concat([pooled, tf.reduce_mean(images, axis=[1, 2]) * scale], axis=1)


def _final_layer(bottleneck: tf.Tensor, size: int, name: str = 'final_result',
                 activation: Callable = tf.nn.softmax) -> tf.Tensor:
    rng = np.random.default_rng(2)
    bottleneck = v1.placeholder_with_default(bottleneck, [None, size],
                                             name='input_1/BottleneckInputPlaceholder')
    with tf.name_scope('final_training_ops'):
        weights = tf.constant(rng.normal(0, 2.0, (size, CLASSES)).astype(np.float32),
                              name='final_weights')
        biases = tf.constant(rng.normal(0, 0.5, CLASSES).astype(np.float32), name='final_biases')
        logits = tf.add(tf.matmul(bottleneck, weights), biases, name='Wx_plus_b')
    return activation(logits, name=name)


def inception_like(activation: Callable = tf.nn.softmax) -> tf.compat.v1.GraphDef:
    """activation=tf.sigmoid: a graph as the Multi-label-Inception-net fork made them."""
    graph = tf.Graph()
    with graph.as_default():
        contents = v1.placeholder(tf.string, [], name='DecodeJpeg/contents')
        decoded = tf.io.decode_jpeg(contents, channels=3, name='DecodeJpeg')
        floats = tf.cast(decoded, tf.float32, name='Cast')
        batched = tf.expand_dims(floats, 0, name='ExpandDims')
        resized = tf.raw_ops.ResizeBilinear(images=batched, size=tf.constant([SIZE, SIZE]),
                                            name='ResizeBilinear')
        centered = tf.subtract(resized, 128.0, name='Sub')
        normalized = tf.multiply(centered, 1.0 / 128.0, name='Mul')
        features = _features(normalized, 1.0)
        reshaped = tf.reshape(features, [1, 9], name='pool_3/_reshape')
        _final_layer(reshaped, 9, activation=activation)
    return graph.as_graph_def()


def poets_like() -> tf.compat.v1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [1, SIZE, SIZE, 3], name='input')
        with tf.name_scope('MobilenetV1'):
            features = _features(images, 1.0)
            reshaped = tf.reshape(features, [-1, 9], name='Predictions/Reshape')
        _final_layer(reshaped, 9)
    return graph.as_graph_def()


def hub_like(final_result_name: str = 'final_result',
             extra: Callable[[tf.Tensor], Sequence[tf.Operation]] = None,
             size: Optional[int] = SIZE) -> tf.compat.v1.GraphDef:
    """`extra(images)` may add ops that final_result then depends on (control dependencies);
    `size` None: a graph of any image size."""
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [None, size, size, 3], name='Placeholder')
        with tf.name_scope('module'):
            features = _features(images, 2.0)
        with tf.control_dependencies(extra(images) if extra else []):
            features = tf.identity(features)
        _final_layer(features, 9, final_result_name)
    return graph.as_graph_def()


def writing_file(target: str) -> tf.compat.v1.GraphDef:
    """A Hub-like graph whose every run writes `target` (a graph is code)."""
    return hub_like(extra=lambda images: [tf.io.write_file(target, 'written by a graph')])


def writing_file_in_function(target: str) -> tf.compat.v1.GraphDef:
    """The same with WriteFile hidden in the graph's function library."""
    @tf.function
    def write(images):
        tf.io.write_file(target, 'written by a function')
        return images

    def extra(images):
        return [write(images).op]
    return hub_like(extra=extra)


def writing_file_tflite(path: str, target: str) -> str:
    """A .tflite classifier whose every run writes `target` (a Select TF op: FlexWriteFile)."""
    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    def classify(images):
        with tf.control_dependencies([tf.io.write_file(target, 'written by a TFLite model')]):
            return tf.nn.softmax(tf.reduce_mean(images, [1, 2]) * 2.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [classify.get_concrete_function()], classify)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    with open(path, 'wb') as f:
        f.write(converter.convert())
    return path


def writing_file_saved_model(path: str, target: str) -> str:
    """A TF2 SavedModel whose serving_default writes `target` (inside a library function)."""
    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
        def serve(self, image):
            tf.io.write_file(target, 'written by a SavedModel')
            return {'prediction': tf.nn.softmax(tf.reduce_mean(image, [1, 2]))}

    writer = Writer()
    tf.saved_model.save(writer, path, signatures={'serving_default': writer.serve})
    return path


def save(graph_def: tf.compat.v1.GraphDef, path: str) -> str:
    with open(path, 'wb') as f:
        f.write(graph_def.SerializeToString())
    return path


def write_labels(path: str, count: int = CLASSES) -> str:
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write(''.join(f'class {i}\n' for i in range(count)))
    return path


def classic_run(graph_path: str, image_path: str, feed: str, mean: float = 0.0,
                std: float = 255.0, size: int = SIZE, name: Optional[str] = '') -> np.ndarray:
    """What old client code did: import the graph, preprocess with TF1 ops, sess.run.

    feed 'DecodeJpeg/contents:0' gets the file's bytes; other feeds get the image decoded,
    resized (ResizeBilinear, no half-pixel centers) and normalized as (pixel - mean) / std.
    name=None imports the graph as tf.import_graph_def does by default, under `import/`.
    """
    graph_def = tf.compat.v1.GraphDef()
    with open(graph_path, 'rb') as f:
        graph_def.ParseFromString(f.read())
    prefix = 'import/' if name is None else f'{name}/' if name else ''
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name=name)
        with open(image_path, 'rb') as f:
            contents = f.read()
        with v1.Session(graph=graph) as session:
            if feed == 'DecodeJpeg/contents:0':
                value = contents
            else:
                decoded = tf.cast(tf.io.decode_image(contents, channels=3), tf.float32)
                resized = v1.image.resize_bilinear(decoded[tf.newaxis], [size, size])
                value = session.run((resized - mean) / std)
            return session.run(prefix + 'final_result:0', {prefix + feed: value})


_RETRAINED = {}


def retrained(tmp_path_factory, tiny_module: str, image_dir: str) -> Tuple[str, str]:
    """(graph, labels) made by `python -m retrain` from the tiny module; once per session."""
    key = (tiny_module, image_dir)
    if key not in _RETRAINED:
        out = str(tmp_path_factory.mktemp('retrained'))
        result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 60,
                                                     '--learning_rate', '1.0',
                                                     '--random_seed', '0'))
        assert result.returncode == 0, result.stderr[-3000:]
        _RETRAINED[key] = (os.path.join(out, 'graph.pb'), os.path.join(out, 'labels.txt'))
    return _RETRAINED[key]


def image_paths(folder: str) -> Sequence[str]:
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                  for name in names if name.endswith('.jpg'))


def looping_graph() -> tf.compat.v1.GraphDef:
    """A Hub-like graph of allowed ops only whose final_result waits on a loop that never ends."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, SIZE, SIZE, 3],
                                          name='Placeholder')
        forever = tf.compat.v1.while_loop(lambda x: x >= 0.0, lambda x: [x + 1.0],
                                          [tf.reduce_mean(images)], return_same_structure=True)[0]
        means = tf.reduce_mean(images, [1, 2]) + 0.0 * forever
        tf.nn.softmax(tf.concat([means, means[:, :1]], 1), name='final_result')
    return graph.as_graph_def()
