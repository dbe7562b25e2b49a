"""A graph is code: graphs with ops that touch files are refused before anything runs."""
import os

import numpy as np
import pytest
import tensorflow as tf

from compat import classifier, safety

import graph_builders as gb
from conftest import run_module, write_image


@pytest.fixture
def photo(tmp_path) -> str:
    path = str(tmp_path / 'photo.jpg')
    write_image(path, (90, 120, 200), np.random.default_rng(0))
    return path


def test_allowlist_passes_every_generation():
    for build in (gb.inception_like, gb.poets_like, gb.hub_like):
        assert safety.unsafe_ops(build()) == []


def test_write_file_in_the_function_library_is_found(tmp_path):
    graph_def = gb.writing_file_in_function(str(tmp_path / 'pwned.txt'))
    assert 'WriteFile' not in {node.op for node in graph_def.node}
    assert safety.unsafe_ops(graph_def) == ['WriteFile']


@pytest.mark.parametrize('build', [gb.writing_file, gb.writing_file_in_function])
def test_library_refuses_and_writes_nothing(tmp_path, photo, build):
    target = str(tmp_path / 'pwned.txt')
    path = gb.save(build(target), str(tmp_path / 'graph.pb'))
    with pytest.raises(safety.UnsafeGraphError, match=r'refusing to run .*graph\.pb: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)
    # The graph really would write: allowed explicitly, running it creates the file.
    model = classifier.load(path, allow_unsafe_ops=True)
    model.classify([open(photo, 'rb').read()])
    assert os.path.exists(target)


def test_label_image_refuses_by_name_and_writes_nothing(tmp_path, photo):
    target = str(tmp_path / 'pwned.txt')
    graph = gb.save(gb.writing_file(target), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    result = run_module('label_image', '--graph', graph, '--labels', labels, photo)
    assert result.returncode == 1
    assert result.stdout == ''
    errors = [line for line in result.stderr.splitlines() if line.startswith('label_image')]
    assert len(errors) == 1 and 'WriteFile' in errors[0] and '--allow_unsafe_ops' in errors[0]
    assert 'Traceback' not in result.stderr
    assert not os.path.exists(target)
    allowed = run_module('label_image', '--graph', graph, '--labels', labels, photo,
                         '--allow_unsafe_ops')
    assert allowed.returncode == 0, allowed.stderr
    assert os.path.exists(target)


def test_tflite_with_a_file_writing_tensorflow_op_is_refused(tmp_path):
    target = str(tmp_path / 'pwned.txt')
    path = gb.writing_file_tflite(str(tmp_path / 'model.tflite'), target)
    with pytest.raises(safety.UnsafeGraphError,
                       match=r'refusing to run .*model\.tflite: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)


def test_saved_model_whose_signature_writes_a_file_is_refused(tmp_path, photo):
    target = str(tmp_path / 'pwned.txt')
    path = gb.writing_file_saved_model(str(tmp_path / 'saved'), target)
    with pytest.raises(safety.UnsafeGraphError, match=r'refusing to run .*saved: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)
    classifier.load(path, allow_unsafe_ops=True).classify([open(photo, 'rb').read()])
    assert os.path.exists(target)


def _main_op_saved_model(path: str, target: str) -> str:
    """A TF1 SavedModel (Builder) that classifies, and whose main_op, run by loading, writes
    `target`."""
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, gb.SIZE, gb.SIZE, 3], name='image')
        prediction = tf.nn.softmax(tf.reduce_mean(image, [1, 2]) * 2.0, name='prediction')
        main_op = tf.io.write_file(target, 'written by loading a SavedModel')
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                session, ['serve'], main_op=main_op, signature_def_map={
                    'serving_default': tf.compat.v1.saved_model.predict_signature_def(
                        {'image': image}, {'prediction': prediction})})
            builder.save()
    return path


def test_saved_model_main_op_is_checked_before_loading_in_every_cli(tmp_path, photo):
    target = str(tmp_path / 'pwned.txt')
    saved = _main_op_saved_model(str(tmp_path / 'saved'), target)
    labels = gb.write_labels(str(tmp_path / 'labels.txt'), 3)
    runs = {'label_image': run_module('label_image', '--graph', saved, '--labels', labels, photo),
            'compat convert': run_module('compat', 'convert', saved, '--labels', labels,
                                         '--saved_model_dir', str(tmp_path / 'converted')),
            'compat inspect': run_module('compat', 'inspect', saved)}
    for name, result in runs.items():
        assert not os.path.exists(target), name
        assert 'Traceback' not in result.stderr, name
    for name in ('label_image', 'compat convert'):
        errors = [line for line in runs[name].stderr.splitlines() if ': error: ' in line]
        assert runs[name].returncode == 1 and len(errors) == 1, runs[name].stderr
        assert f'refusing to run {saved}: ' in errors[0] and errors[0].endswith(
            'WriteFile (use --allow_unsafe_ops if you trust it)'), errors[0]
    inspect = runs['compat inspect']
    assert inspect.returncode == 0, inspect.stderr
    assert 'unsafe ops: WriteFile' in [line.strip() for line in inspect.stdout.splitlines()]
    # The model really does write on loading: allowed explicitly, it runs and classifies.
    allowed = run_module('label_image', '--graph', saved, '--labels', labels, photo,
                         '--allow_unsafe_ops')
    assert allowed.returncode == 0, allowed.stderr
    assert os.path.exists(target)
    assert allowed.stdout.splitlines()[0] == photo


def test_tf2_resource_initializer_run_by_loading_is_checked(tmp_path, photo):
    """TF2 loading calls the initializers of the model's resources: they are checked too."""
    target = str(tmp_path / 'pwned.txt')

    class Writing(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[])

        def _initialize(self):
            tf.io.write_file(target, 'written by a resource initializer')

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.resource = Writing()

        @tf.function(input_signature=[tf.TensorSpec([None, gb.SIZE, gb.SIZE, 3], tf.float32)])
        def serve(self, image):
            return {'prediction': tf.nn.softmax(tf.reduce_mean(image, [1, 2]))}

    model = Model()
    path = str(tmp_path / 'saved')
    tf.saved_model.save(model, path, signatures={'serving_default': model.serve})
    if os.path.exists(target):
        os.remove(target)  # Saving ran the initializer once; loading must not.
    with pytest.raises(safety.UnsafeGraphError, match=r'refusing to run .*saved: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)
    classifier.load(path, allow_unsafe_ops=True)
    assert os.path.exists(target)
