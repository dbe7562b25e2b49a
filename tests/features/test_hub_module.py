"""Loading image feature-vector modules: TF2 SavedModels, TF1 signatures, archives, sizes."""
import os
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from retrain.common.errors import ToolError
from retrain.features.hub_module import hub_cache_suffix, load_hub_module

from conftest import TinyFeatureVector, save_tiny_module


@pytest.mark.parametrize('handle,suffix', [
    ('https://tfhub.dev/google/imagenet/inception_v3/feature_vector/1',
     '_https~tfhub.dev~google~imagenet~inception_v3~feature_vector~1'),
    ('C:\\models\\m', '_C~~models~m'),
    ('/work/module/', '_~work~module~'),
])
def test_cache_suffix_from_the_handle_as_typed(handle, suffix):
    assert hub_cache_suffix(handle) == suffix


def test_tf2_module_size_from_signature_and_bottleneck_from_output(tiny_module):
    extractor = load_hub_module(tiny_module)
    assert extractor.image_size == (32, 32)
    assert extractor.bottleneck_size == 19
    images = tf.random.uniform([3, 32, 32, 3], seed=1)
    expected = TinyFeatureVector()._features(images)  # Same seeded weights as the saved one.
    np.testing.assert_allclose(extractor(images).numpy(), expected.numpy(), atol=1e-5)


def test_any_size_module_uses_image_size(tmp_path):
    path = save_tiny_module(str(tmp_path / 'any_size'), size=None)
    assert load_hub_module(path).image_size == (224, 224)
    assert load_hub_module(path, image_size=96).image_size == (96, 96)


def test_local_tar_gz_module(tmp_path, tiny_module, monkeypatch):
    monkeypatch.setenv('TFHUB_CACHE_DIR', str(tmp_path / 'cache'))
    archive = str(tmp_path / 'module.tar.gz')
    with tarfile.open(archive, 'w:gz') as tar:
        for name in os.listdir(tiny_module):
            tar.add(os.path.join(tiny_module, name), arcname=name)
    extractor = load_hub_module(archive)
    assert extractor.bottleneck_size == 19
    assert extractor.cache_suffix == hub_cache_suffix(archive)


@pytest.mark.parametrize('hub_format', [False, True])
def test_tf1_hub_format_signature(tmp_path, hub_format):
    """A TF1-style SavedModel with `image_feature_vector`: `images` in, `default` out; in the TF1
    Hub format (tfhub_module.pb), beside a training graph, the one with no tags (as `hub.load`)."""
    path = str(tmp_path / 'tf1_module')
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 24, 24, 3], name='images')
        features = tf.concat([tf.reduce_mean(images, [1, 2]), tf.reduce_max(images, [1, 2])], 1)
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(path)
            signature = tf.compat.v1.saved_model.predict_signature_def(
                inputs={'images': images}, outputs={'default': features})
            builder.add_meta_graph_and_variables(
                session, [] if hub_format else [tf.compat.v1.saved_model.tag_constants.SERVING],
                signature_def_map={'default': signature, 'image_feature_vector': signature})
            if hub_format:  # Hub modules also hold a training graph.
                builder.add_meta_graph(['train'], signature_def_map={'default': signature})
            builder.save()
    if hub_format:
        with open(os.path.join(path, 'tfhub_module.pb'), 'wb'):
            pass  # Its content (the module's attachments) is not read.
    extractor = load_hub_module(path)
    assert extractor.image_size == (24, 24) and extractor.bottleneck_size == 6
    batch = np.random.default_rng(0).random((2, 24, 24, 3)).astype(np.float32)
    expected = np.concatenate([batch.mean((1, 2)), batch.max((1, 2))], 1)
    np.testing.assert_allclose(extractor(tf.constant(batch)).numpy(), expected, atol=1e-6)


def test_module_without_image_input_is_refused(tmp_path):
    class TextModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, text):
            return tf.strings.length(text)

    path = str(tmp_path / 'text_model')
    tf.saved_model.save(TextModel(), path)
    with pytest.raises(ToolError, match='is not an image feature vector'):
        load_hub_module(path)


def test_a_module_name_that_is_not_utf8_is_refused_saying_so(tmp_path, tiny_module):
    """TensorFlow cannot open such a name: the reason once read "'utf-8' codec can't encode"."""
    odd = os.path.join(os.fsdecode(bytes(tmp_path)), os.fsdecode(b'mo\xffd'))
    shutil.copytree(tiny_module, odd)
    with pytest.raises(ToolError, match="its name is not UTF-8, which TensorFlow cannot open"):
        load_hub_module(odd)
