"""Legacy mode (`--model_dir`, `--architecture`): classic archives, caches and exported graphs.

Synthetic frozen graphs stand in for the classic ones: tiny, but with the real tensor names,
shapes and batch behaviour (Inception's `pool_3/_reshape` fixed to batch 1 and fed from an in-graph
JPEG decoder; MobileNet's `input` placeholder fixed to [1, S, S, 3]), packed in archives named as
the classic downloads. Classic values are computed the classic way, with tf.compat.v1 sessions.
"""
import os
import re
import shutil
import tarfile
import time
from typing import Dict

import numpy as np
import pytest
import tensorflow as tf

from compat import graphs
from retrain.cache import bottleneck_files
from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.features import graph_files, legacy_models
from retrain.train import distortions
from retrain.train.distortions import ImageBatches

from conftest import closed_port_url, fixed_split, run_module

INCEPTION_ARCHIVE = 'inception-2015-12-05.tgz'
MOBILENET = 'mobilenet_0.50_128'
MOBILENET_ARCHIVE = 'mobilenet_v1_0.50_128_frozen.tgz'


def _constant(rng: np.random.Generator, shape) -> tf.Tensor:
    return tf.constant(rng.normal(0, 1, shape).astype(np.float32))


def inception_graph_def(seed: int = 0) -> tf.compat.v1.GraphDef:
    """Classic Inception's outline: DecodeJpeg/contents -> ... -> Mul -> pool_3/_reshape."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name='DecodeJpeg/contents')
        decoded = tf.io.decode_jpeg(contents, channels=3, name='DecodeJpeg')
        expanded = tf.expand_dims(tf.cast(decoded, tf.float32, name='Cast'), 0, name='ExpandDims')
        resized = tf.raw_ops.ResizeBilinear(images=expanded, size=[299, 299], name='ResizeBilinear')
        centered = tf.multiply(tf.subtract(resized, 128.0, name='Sub'), 1 / 128.0, name='Mul')
        small = tf.nn.avg_pool2d(centered, 37, 37, 'VALID')  # [1, 8, 8, 3]
        mixed = tf.nn.relu(tf.nn.conv2d(small, _constant(rng, [1, 1, 3, 2048]), 1, 'VALID')
                           + _constant(rng, [2048]))
        pool = tf.nn.avg_pool2d(mixed, 8, 1, 'VALID', name='pool_3')
        features = tf.reshape(pool, [1, 2048], name='pool_3/_reshape')
        tf.nn.softmax(tf.matmul(features, _constant(rng, [2048, 1008])), name='softmax')
    return graph.as_graph_def()


def mobilenet_graph_def(size: int, seed: int = 0) -> tf.compat.v1.GraphDef:
    """MobileNet v1's outline: input [1, S, S, 3] -> ... -> MobilenetV1/Predictions/Reshape."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, size, size, 3], name='input')
        small = tf.nn.avg_pool2d(images, size // 8, size // 8, 'VALID')  # [1, 8, 8, 3]
        hidden = tf.nn.relu6(tf.nn.conv2d(small, _constant(rng, [1, 1, 3, 32]), 1, 'VALID')
                             + _constant(rng, [32]))
        pool = tf.nn.avg_pool2d(hidden, 8, 1, 'VALID', name='MobilenetV1/Logits/AvgPool_1a/AvgPool')
        logits = tf.nn.conv2d(pool, _constant(rng, [1, 1, 32, 1001]), 1, 'VALID')
        squeezed = tf.squeeze(logits, [1, 2], name='MobilenetV1/Logits/SpatialSqueeze')
        flat = tf.reshape(squeezed, [-1, 1001], name='MobilenetV1/Predictions/Reshape')
        softmax = tf.nn.softmax(flat, name='MobilenetV1/Predictions/Softmax')
        tf.reshape(softmax, [1, 1001], name='MobilenetV1/Predictions/Reshape_1')
    return graph.as_graph_def()


def write_archive(path: str, members: Dict[str, tf.compat.v1.GraphDef]) -> str:
    """A .tgz holding each GraphDef under its '/'-separated member name."""
    staging = path + '.staging'
    with tarfile.open(path, 'w:gz') as tar:
        for name, graph_def in members.items():
            target = os.path.join(staging, *name.split('/'))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, 'wb') as f:
                f.write(graph_def.SerializeToString())
            tar.add(target, arcname=name)
    shutil.rmtree(staging)
    return path


@pytest.fixture(scope='module')
def inception_dir(tmp_path_factory) -> str:
    model_dir = str(tmp_path_factory.mktemp('inception_model'))
    write_archive(os.path.join(model_dir, INCEPTION_ARCHIVE),
                  {'classify_image_graph_def.pb': inception_graph_def()})
    return model_dir


@pytest.fixture(scope='module')
def mobilenet_dir(tmp_path_factory) -> str:
    model_dir = str(tmp_path_factory.mktemp('models'))
    write_archive(os.path.join(model_dir, MOBILENET_ARCHIVE),
                  {'mobilenet_v1_0.50_128/frozen_graph.pb': mobilenet_graph_def(128, seed=1),
                   'mobilenet_v1_0.50_128/quantized_graph.pb': mobilenet_graph_def(128, seed=2)})
    return model_dir


def classic_inception_bottleneck(graph_def, jpeg: bytes) -> np.ndarray:
    """What TF 1.0-1.4 retrain.py cached: the JPEG fed to the graph's own decoder."""
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run('pool_3/_reshape:0', {'DecodeJpeg/contents:0': jpeg})[0]


def classic_mobilenet_bottleneck(graph_def, jpeg: bytes, size: int) -> np.ndarray:
    """What Poets retrain.py cached: its own decode/resize/normalize ops feeding `input:0`."""
    with tf.Graph().as_default() as graph:
        data = tf.compat.v1.placeholder(tf.string, name='DecodeJPGInput')
        decoded = tf.cast(tf.image.decode_jpeg(data, channels=3), tf.float32)
        resized = tf.compat.v1.image.resize_bilinear(tf.expand_dims(decoded, 0), [size, size])
        normalized = (resized - 127.5) * (1.0 / 127.5)
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            pixels = session.run(normalized, {data: jpeg})
            return session.run('MobilenetV1/Predictions/Reshape:0', {'input:0': pixels})[0]


def mobilenet_one_by_one(graph_def, images: np.ndarray) -> np.ndarray:
    """The classic graph's bottlenecks of [0, 1] images, fed one at a time at `input:0`."""
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            return np.concatenate([session.run('MobilenetV1/Predictions/Reshape:0',
                                               {'input:0': (image[None] * 255 - 127.5) / 127.5})
                                   for image in images])


def read(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def jpegs(image_dir: str):
    """(class dir, file name) of every JPEG, sorted."""
    return [(c, name) for c in sorted(os.listdir(image_dir))
            for name in sorted(os.listdir(os.path.join(image_dir, c))) if name.endswith('.jpg')]


def assert_entry_points_agree(graph_path: str, image_path: str, size: int) -> np.ndarray:
    """Every historical entry point of the exported graph gives the same final_result."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(read(graph_path))
    unit = image_io.load_image(image_path, (size, size))[np.newaxis]
    centered = (unit * 255.0 - 128.0) / 128.0
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            results = [session.run('final_result:0', feed) for feed in (
                {'DecodeJpeg/contents:0': read(image_path)}, {'Placeholder:0': unit},
                {'Mul:0': centered}, {'input:0': centered})]
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-4, atol=1e-5)
    return results[0]


def test_architecture_names():
    inception = legacy_models.architecture_info('inception_v3')
    assert (inception.url, inception.graph_file, inception.input_tensor,
            inception.bottleneck_tensor, inception.bottleneck_size, inception.image_size) == (
        'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz',
        'classify_image_graph_def.pb', 'Mul:0', 'pool_3/_reshape:0', 2048, 299)
    quantized = legacy_models.architecture_info('mobilenet_0.75_160_quantized')
    assert (quantized.archive_name, quantized.graph_file, quantized.input_tensor,
            quantized.bottleneck_size, quantized.image_size, quantized.input_mean) == (
        'mobilenet_v1_0.75_160_frozen.tgz', 'mobilenet_v1_0.75_160/quantized_graph.pb', 'input:0',
        1001, 160, 127.5)
    for bad in ('mobilenet_0.5_224', 'mobilenet_1.0_225', 'resnet_50', 'mobilenet_1.0_224_q'):
        with pytest.raises(ToolError, match=r'unknown architecture .*inception_v3, '
                                               r'mobilenet_<1\.0\|0\.75\|0\.50\|0\.25>') as error:
            legacy_models.architecture_info(bad)
        assert '\n' not in str(error.value)


def test_fixed_batch_graphs_run_in_batches(inception_dir, mobilenet_dir):
    """Caching runs batches although the classic graphs are fixed to a batch of one."""
    images = tf.random.stateless_uniform([3, 299, 299, 3], seed=[1, 2]).numpy()
    extractor = legacy_models.load_architecture('inception_v3', inception_dir)
    batched = extractor(tf.constant(images)).numpy()
    singles = np.concatenate([extractor(images[i:i + 1]).numpy() for i in range(3)])
    assert batched.shape == (3, 2048)
    np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-6)
    # Fed at Mul:0 as (x * 255 - 128) / 128, read at pool_3/_reshape:0, as the classic graph.
    graph_def = inception_graph_def()
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            direct = session.run('pool_3/_reshape:0',
                                 {'Mul:0': (images[:1] * 255 - 128) / 128})
    np.testing.assert_allclose(batched[:1], direct, rtol=1e-4, atol=1e-5)
    assert extractor.cache_suffix == '_inception_v3'
    assert tuple(extractor.legacy_cache_suffixes) == ('',)

    quantized = legacy_models.load_architecture(MOBILENET + '_quantized', mobilenet_dir)
    small = tf.image.resize(images, [128, 128]).numpy()
    np.testing.assert_allclose(quantized(tf.constant(small)).numpy(),
                               mobilenet_one_by_one(mobilenet_graph_def(128, seed=2), small),
                               rtol=1e-4, atol=1e-5)
    assert quantized.cache_suffix == f'_{MOBILENET}_quantized'


def test_bad_archives_are_one_line_errors(tmp_path):
    model_dir = str(tmp_path)
    archive = os.path.join(model_dir, MOBILENET_ARCHIVE)
    with open(archive, 'wb') as f:
        f.write(b'\x1f\x8b truncated download')
    with pytest.raises(ToolError, match=r'model archive .*mobilenet_v1_0\.50_128_frozen\.tgz '
                                           r'is damaged .*delete') as error:
        legacy_models.load_architecture(MOBILENET, model_dir)
    assert '\n' not in str(error.value)
    write_archive(archive, {'mobilenet_v1_0.50_128/labels.pb': mobilenet_graph_def(128)})
    with pytest.raises(ToolError, match=r'does not contain mobilenet_v1_0\.50_128/frozen_graph'):
        legacy_models.load_architecture(MOBILENET, model_dir)
    write_archive(archive, {'mobilenet_v1_0.50_128/frozen_graph.pb': inception_graph_def()})
    with pytest.raises(ToolError, match=r'frozen_graph\.pb in .*_frozen\.tgz is not a '
                                           r'mobilenet_0\.50_128 graph: it has no tensor'):
        legacy_models.load_architecture(MOBILENET, model_dir)


def test_graph_extracted_by_a_classic_run_is_used_without_its_archive(tmp_path):
    target = tmp_path / 'mobilenet_v1_0.50_128' / 'frozen_graph.pb'
    target.parent.mkdir()
    target.write_bytes(mobilenet_graph_def(128, seed=1).SerializeToString())
    extractor = legacy_models.load_architecture(MOBILENET, str(tmp_path))
    images = tf.random.stateless_uniform([2, 128, 128, 3], seed=(1, 2)).numpy()
    np.testing.assert_allclose(extractor(tf.constant(images)).numpy(),
                               mobilenet_one_by_one(mobilenet_graph_def(128, seed=1), images),
                               rtol=1e-4, atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ['mobilenet_v1_0.50_128']  # Nothing downloaded.


def test_offline_without_archive_names_the_file_to_place(tmp_path, image_dir):
    """The Inception-era seed command line, offline (a dead local proxy keeps it so everywhere)."""
    model_dir = str(tmp_path / 'inception_model')
    dead_proxy = closed_port_url()
    offline = {'http_proxy': dead_proxy, 'HTTP_PROXY': dead_proxy, 'no_proxy': '', 'NO_PROXY': ''}
    result = run_module('retrain', '--bottleneck_dir', str(tmp_path / 'bottleneck'),
                        '--how_many_training_steps', '5', '--model_dir', model_dir + os.sep,
                        '--output_graph', str(tmp_path / 'output_graph.pb'),
                        '--output_labels', str(tmp_path / 'output_labels.txt'),
                        '--summaries_dir', str(tmp_path / 'retrain_logs'),
                        '--image_dir', image_dir, env_extra=offline)
    assert result.returncode == 1, result.stderr
    assert 'Traceback' not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith('retrain: error:')]
    assert len(error) == 1, result.stderr
    assert 'inception-2015-12-05.tgz' in error[0] and model_dir in error[0]
    assert not os.path.exists(tmp_path / 'output_graph.pb')
    assert os.listdir(model_dir) == []  # No partial download left behind.


def test_inception_era_command_reuses_classic_caches(tmp_path, image_dir, inception_dir):
    """TF 1.0-1.4 caches (`photo.jpg.txt`) are read as-is; missing ones match the classic path."""
    images = shutil.copytree(image_dir, str(tmp_path / 'train'))
    bottleneck_dir = str(tmp_path / 'bottleneck')
    graph_def = inception_graph_def()
    classic = {}
    for index, (class_dir, name) in enumerate(jpegs(images)):
        image = os.path.join(images, class_dir, name)
        if index % 3 == 0:
            # A classic cache, then an image that cannot be decoded: only the cache can be used.
            classic[image] = os.path.join(bottleneck_dir, class_dir, name + '.txt')
            os.makedirs(os.path.dirname(classic[image]), exist_ok=True)
            values = classic_inception_bottleneck(graph_def, read(image))
            with open(classic[image], 'w', encoding='utf-8') as f:
                f.write(','.join(str(v) for v in values))
            with open(image, 'wb') as f:
                f.write(b'not a jpeg any more')
    past = time.time() - 3600
    for path in classic.values():
        os.utime(path, (past, past))
    before = {path: read(path) for path in classic.values()}

    result = run_module('retrain', '--bottleneck_dir', bottleneck_dir,
                        '--how_many_training_steps', '30', '--model_dir', inception_dir + os.sep,
                        '--output_graph', str(tmp_path / 'output_graph.pb'),
                        '--output_labels', str(tmp_path / 'output_labels.txt'),
                        '--image_dir', 'train', '--summaries_dir', '', '--random_seed', '1',
                        cwd=str(tmp_path))  # A relative image folder: the same split every time.
    assert result.returncode == 0, result.stderr
    assert 'Skipping' not in result.stderr  # The undecodable images were never read.
    for path, content in before.items():
        assert read(path) == content and os.path.getmtime(path) == pytest.approx(past)
    for class_dir, name in jpegs(images):
        image = os.path.join(images, class_dir, name)
        computed = os.path.join(bottleneck_dir, class_dir, name + '_inception_v3.txt')
        assert os.path.exists(computed) != (image in classic)
        if image not in classic:
            values = bottleneck_files.read_bottleneck(computed, 2048)
            np.testing.assert_allclose(values, classic_inception_bottleneck(graph_def, read(image)),
                                       rtol=1e-4, atol=1e-5)
    accuracy = float(re.search(r'Final test accuracy = ([0-9.]+)%', result.stderr).group(1))
    assert accuracy >= 80
    image = next(os.path.join(images, c, n) for c, n in jpegs(images)
                 if os.path.join(images, c, n) not in classic)
    assert_entry_points_agree(str(tmp_path / 'output_graph.pb'), image, 299)


def test_poets_command_caches_with_architecture_suffix(tmp_path, image_dir, mobilenet_dir):
    """Poets naming `<image>_<architecture>.txt`: its caches are reused as-is, and the values
    computed for missing files match the Poets decode/resize/normalize path."""
    image_dir = shutil.copytree(image_dir, str(tmp_path / 'flower_photos'))
    bottleneck_dir = str(tmp_path / 'bottlenecks')
    graph_def = mobilenet_graph_def(128, seed=1)
    poets = {}
    for class_dir, name in jpegs(image_dir)[1::4]:
        image = os.path.join(image_dir, class_dir, name)
        poets[image] = os.path.join(bottleneck_dir, class_dir, f'{name}_{MOBILENET}.txt')
        os.makedirs(os.path.dirname(poets[image]), exist_ok=True)
        values = classic_mobilenet_bottleneck(graph_def, read(image), 128)
        with open(poets[image], 'w', encoding='utf-8') as f:
            f.write(','.join(str(v) for v in values))
        with open(image, 'wb') as f:
            f.write(b'only its cache is usable')
    before = {path: (read(path), os.path.getmtime(path)) for path in poets.values()}
    result = run_module('retrain', '--image_dir', 'flower_photos', '--architecture', MOBILENET,
                        '--model_dir', mobilenet_dir, '--bottleneck_dir', bottleneck_dir,
                        '--output_graph', str(tmp_path / 'retrained_graph.pb'),
                        '--output_labels', str(tmp_path / 'retrained_labels.txt'),
                        '--summaries_dir', str(tmp_path / 'training_summaries'),
                        '--how_many_training_steps', '40', '--random_seed', '2',
                        cwd=str(tmp_path))  # A relative image folder: the same split every time.
    assert result.returncode == 0, result.stderr
    assert 'Skipping' not in result.stderr
    assert {path: (read(path), os.path.getmtime(path)) for path in poets.values()} == before
    assert sorted(os.listdir(mobilenet_dir)) == [MOBILENET_ARCHIVE]  # Read in place, as-is.
    cached = [name for name in os.listdir(os.path.join(bottleneck_dir, 'red'))
              if name.endswith(f'_{MOBILENET}.txt')]
    assert len(cached) == 30
    for class_dir, name in jpegs(image_dir)[::3]:
        image = os.path.join(image_dir, class_dir, name)
        if image in poets:
            continue
        values = bottleneck_files.read_bottleneck(
            os.path.join(bottleneck_dir, class_dir, f'{name}_{MOBILENET}.txt'), 1001)
        expected = classic_mobilenet_bottleneck(graph_def, read(image), 128)
        np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4)
    accuracy = float(re.search(r'Final test accuracy = ([0-9.]+)%', result.stderr).group(1))
    assert accuracy >= 80
    assert_entry_points_agree(str(tmp_path / 'retrained_graph.pb'),
                              os.path.join(image_dir, *jpegs(image_dir)[0]), 128)


def test_real_mobilenet_archive_on_flower_photos(tmp_path, shared_dir):
    """The real classic archive: the seed command line with `--architecture mobilenet_0.25_224`."""
    archive = os.path.join(shared_dir, 'models', 'mobilenet_v1_0.25_224_frozen.tgz')
    image_dir = os.path.join(shared_dir, 'data', 'flower_photos_small')
    # Classic values: one real photo through the Poets path and through ours.
    daisies = os.path.join(image_dir, 'daisy')
    photo = os.path.join(daisies, sorted(os.listdir(daisies))[0])
    arch = legacy_models.architecture_info('mobilenet_0.25_224')
    graph_def = legacy_models.read_archive_graph(archive, arch)
    extractor = legacy_models.load_architecture('mobilenet_0.25_224', os.path.dirname(archive))
    ours = extractor(image_io.load_image(photo, (224, 224))[np.newaxis]).numpy()[0]
    np.testing.assert_allclose(ours, classic_mobilenet_bottleneck(graph_def, read(photo), 224),
                               rtol=1e-3, atol=2e-3)
    frozen_graph = extractor.freeze().graph_def
    assert not frozen_graph.library.function  # Flat: the graph is inlined, no function calls.

    cwd, relative = fixed_split(image_dir)  # The split hashes the path as typed: this one.
    result = run_module('retrain', '--bottleneck_dir', str(tmp_path / 'bottleneck'),
                        '--how_many_training_steps', '200',
                        '--model_dir', os.path.dirname(archive),
                        '--output_graph', str(tmp_path / 'output_graph.pb'),
                        '--output_labels', str(tmp_path / 'output_labels.txt'),
                        '--image_dir', relative, '--architecture', 'mobilenet_0.25_224',
                        '--summaries_dir', '', '--random_seed', '0', cwd=cwd)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r'Final test accuracy = ([0-9.]+)%', result.stderr).group(1))
    assert accuracy >= 60, result.stderr  # 72.7% (32 of N=44; chance: 20%) after 200 steps.
    graph = str(tmp_path / 'output_graph.pb')
    assert_entry_points_agree(graph, photo, 224)
    # Daisies come out as daisies (training ones among them: a check of the graph, not the split).
    labels = read(str(tmp_path / 'output_labels.txt')).decode('utf-8').split()
    classify = graphs.graph_function(graph_files.load_graph_def(graph),
                                           ['DecodeJpeg/contents:0'], ['final_result:0'])
    daisy_photos = [os.path.join(daisies, name) for name in sorted(os.listdir(daisies))[:9]]
    predicted = [labels[int(np.argmax(classify(tf.constant(read(path)))[0]))]
                 for path in daisy_photos]
    assert predicted.count('daisy') >= 6, predicted


# Issue 12 item 8: distortions through the classic graphs, whose unused heads fix a batch of 1.
LEGACY_FAMILIES = ('inception_v3', MOBILENET, MOBILENET + '_quantized')
DISTORTIONS = {'--flip_left_right': {'flip_left_right': True},
               '--random_brightness 10': {'random_brightness': 10},
               '--random_scale 10': {'random_scale': 10},
               '--random_crop 10': {'random_crop': 10}}


def _legacy_model_dir(architecture: str, inception_dir: str, mobilenet_dir: str) -> str:
    return inception_dir if architecture == 'inception_v3' else mobilenet_dir


def assert_distorted_batches_match_single_images(extractor, config: RetrainConfig) -> None:
    """A batch of distorted images gives, row by row, what each image gives on its own."""
    size = distortions.working_size(extractor.image_size, distortions.max_zoom(config), 3)
    images = tf.random.stateless_uniform([3, *size, 3], seed=[3, 4], maxval=256,
                                         dtype=tf.int32).numpy().astype(np.uint8)
    labels = np.array([1, 0, 1])
    indices = np.array([2, 0, 1, 2])
    # Same seed: the second ImageBatches draws the same distortions as the first.
    first, second = (ImageBatches(images, labels, extractor, config, seed=7) for _ in range(2))
    shown = first.distorted(tf.constant(indices, tf.int32)).numpy()
    features, batch_labels = second(indices)
    singles = np.concatenate([extractor(shown[i:i + 1]).numpy() for i in range(len(indices))])
    assert batch_labels.numpy().tolist() == [1, 1, 0, 1]
    np.testing.assert_allclose(features.numpy(), singles, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('flag', DISTORTIONS)
@pytest.mark.parametrize('architecture', LEGACY_FAMILIES)
def test_distorted_batches_run_through_fixed_batch_graphs(architecture, flag, inception_dir,
                                                          mobilenet_dir):
    """Used to fail while tracing: "Cannot reshape a tensor with 4004 elements to shape [1,1001]"
    (MobileNet's softmax head), "... 8192 elements to shape [1,2048]" (Inception's pool_3)."""
    extractor = legacy_models.load_architecture(
        architecture, _legacy_model_dir(architecture, inception_dir, mobilenet_dir))
    assert_distorted_batches_match_single_images(extractor, RetrainConfig(**DISTORTIONS[flag]))


@pytest.mark.parametrize('architecture, flag', list(zip(LEGACY_FAMILIES, DISTORTIONS)))
def test_legacy_command_lines_train_on_distorted_images(tmp_path, image_dir, inception_dir,
                                                        mobilenet_dir, architecture, flag):
    """The Poets / TF 1.x command lines with a distortion flag: a trained graph, no traceback."""
    result = run_module(
        'retrain', '--image_dir', image_dir, '--architecture', architecture,
        '--model_dir', _legacy_model_dir(architecture, inception_dir, mobilenet_dir),
        '--bottleneck_dir', str(tmp_path / 'bottlenecks'),
        '--output_graph', str(tmp_path / 'retrained_graph.pb'),
        '--output_labels', str(tmp_path / 'retrained_labels.txt'),
        '--summaries_dir', '', '--how_many_training_steps', '3', '--train_batch_size', '16',
        '--random_seed', '0', *flag.split())
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert 'Step 2: Train accuracy' in result.stderr
    assert_entry_points_agree(str(tmp_path / 'retrained_graph.pb'),
                              os.path.join(image_dir, *jpegs(image_dir)[0]),
                              legacy_models.architecture_info(architecture).image_size)


def test_real_mobilenet_archive_with_every_distortion(tmp_path, shared_dir):
    """The real float and quantized graphs in batches of distorted images, and the Poets codelab
    command line with its distortion flags on a few real photos (relative paths: a fixed split)."""
    model_dir = os.path.join(shared_dir, 'models')
    for architecture in ('mobilenet_0.25_224', 'mobilenet_0.25_224_quantized'):
        extractor = legacy_models.load_architecture(architecture, model_dir)
        assert_distorted_batches_match_single_images(
            extractor, RetrainConfig(flip_left_right=True, random_crop=10, random_scale=10,
                           random_brightness=10))
    photos = os.path.join(shared_dir, 'data', 'flower_photos_small')
    for flower in ('daisy', 'roses'):
        os.makedirs(tmp_path / 'flowers' / flower)
        for name in sorted(os.listdir(os.path.join(photos, flower)))[:12]:
            shutil.copy(os.path.join(photos, flower, name), tmp_path / 'flowers' / flower)
    result = run_module(
        'retrain', '--image_dir', 'flowers', '--architecture', 'mobilenet_0.25_224',
        '--model_dir', model_dir, '--bottleneck_dir', 'bottlenecks',
        '--output_graph', 'retrained_graph.pb', '--output_labels', 'retrained_labels.txt',
        '--summaries_dir', '', '--how_many_training_steps', '3', '--train_batch_size', '8',
        '--flip_left_right', '--random_brightness', '10', '--random_scale', '10',
        '--random_crop', '10', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert 'Step 2: Train accuracy' in result.stderr
    assert read(str(tmp_path / 'retrained_labels.txt')).decode('utf-8').split() == ['daisy',
                                                                                     'roses']


def test_an_unknown_architecture_is_a_usage_error_before_any_work(tmp_path):
    result = run_module('retrain', '--architecture', 'mobilenet_0.33_224', '--image_dir',
                        str(tmp_path / 'no such folder'), '--model_dir', str(tmp_path / 'm'))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "retrain: error: unknown architecture 'mobilenet_0.33_224'; valid ones: inception_v3, ")
    assert not os.path.exists(tmp_path / 'm')


def test_flags_a_run_cannot_follow_are_named_in_a_warning(tmp_path, image_dir, mobilenet_dir,
                                                         tiny_module):
    fill_only = ['--image_dir', image_dir, '--how_many_training_steps', '0',
                 '--bottleneck_dir', str(tmp_path / 'bn')]
    legacy = run_module('retrain', '--architecture', MOBILENET, '--model_dir', mobilenet_dir,
                        '--image_size', '224', *fill_only)
    assert legacy.returncode == 0, legacy.stderr
    assert (f'--architecture {MOBILENET} has a fixed input size 128x128; ignoring '
            '--image_size=224') in legacy.stderr
    hub = run_module('retrain', '--tfhub_module', tiny_module, '--architecture', MOBILENET,
                     '--model_dir', mobilenet_dir, *fill_only)
    assert hub.returncode == 0, hub.stderr
    assert '--tfhub_module is given: ignoring --architecture and --model_dir' in hub.stderr


def test_fine_tune_steps_on_a_frozen_graph_is_a_run_without_them(tmp_path, image_dir,
                                                                  mobilenet_dir):
    """Nothing to tune: the flag is ignored with a warning, and the graph is the one a run
    without it writes, unknown judgement included (it was dropped as if the module had changed)."""
    def run(name: str, *extra: str):
        result = run_module('retrain', '--architecture', MOBILENET, '--model_dir', mobilenet_dir,
                            '--image_dir', image_dir, '--bottleneck_dir', str(tmp_path / 'bn'),
                            '--random_seed', '0', '--noreport', '--summaries_dir', '',
                            '--output_graph', str(tmp_path / f'{name}.pb'),
                            '--output_labels', str(tmp_path / f'{name}.txt'),
                            '--how_many_training_steps', '20', *extra)
        assert result.returncode == 0, result.stderr
        return result

    run('filled', '--how_many_training_steps', '0')  # Both runs read the same cached values.
    tuned = run('tuned', '--fine_tune_steps', '5')
    assert f'{MOBILENET} frozen graph has no trainable variables: --fine_tune_steps ignored' \
        in tuned.stderr
    assert 'Fine-tuned' not in tuned.stderr and 'Unknown judgement fitted' in tuned.stderr
    run('plain')

    def constants(name: str) -> Dict[str, bytes]:  # (Traced functions' names vary with the run.)
        graph_def = tf.compat.v1.GraphDef.FromString((tmp_path / f'{name}.pb').read_bytes())
        return {node.name: node.attr['value'].SerializeToString()
                for node in graph_def.node if node.op == 'Const'}

    tuned_constants = constants('tuned')
    assert tuned_constants == constants('plain')
    assert any(name.startswith('unknown_judgement/') for name in tuned_constants)
