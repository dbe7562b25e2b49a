"""Legacy mode: the classic frozen-graph architectures behind the FeatureExtractor interface.

`--architecture inception_v3` (TF 1.0-1.4) and `mobilenet_<version>_<size>[_quantized]`
(TensorFlow for Poets) name a frozen graph inside a classic archive in `--model_dir`. The archive
is used where the user keeps it, or downloaded there from its classic URL when absent; the graph
file is read straight out of it, so nothing is extracted and a read-only `--model_dir` works.
A graph file that an earlier classic run extracted beside a missing archive is used as well.

Each graph is wrapped in a small adaptor graph that takes our [0, 1] images, applies the
architecture's own normalization and feeds the graph's resized-input tensor. The classic
bottleneck tensors are reshapes to [batch, D], and Inception's hard-codes a batch of 1, so the
adaptor reads the reshape's input and flattens it to [-1, D] itself: the same values, any batch.
"""
import dataclasses
import os
import re
import tarfile
from typing import Callable, Tuple

import tensorflow as tf
from absl import logging

from retrain.common import downloads
from retrain.common.errors import ConfigError, ToolError, error_cause, error_summary
from retrain.config import RetrainConfig
from retrain.features import graph_files
from retrain.features.extractors import FeatureExtractor, FrozenExtractor

INCEPTION_URL = 'http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz'
MOBILENET_URL = 'http://download.tensorflow.org/models/mobilenet_v1_{version}_{size}_frozen.tgz'
MOBILENET_VERSIONS = ('1.0', '0.75', '0.50', '0.25')
MOBILENET_SIZES = (224, 192, 160, 128)
VALID_NAMES = ('inception_v3, mobilenet_<1.0|0.75|0.50|0.25>_<224|192|160|128>[_quantized] '
               '(e.g. mobilenet_0.50_224)')
_MOBILENET_NAME = re.compile(
    r'mobilenet_(?P<version>[0-9.]+)_(?P<size>[0-9]+)(?P<quantized>_quantized)?')
# The adaptor's own tensor names; the model is imported under `model/` so they cannot clash.
_IMAGES = 'images'
_BOTTLENECK = 'bottleneck'


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Where a classic model lives and how to feed and read it (docs/COMPATIBILITY.md
    section 10)."""
    name: str
    url: str
    graph_file: str  # Path of the graph inside the archive, '/'-separated as tar stores it.
    input_tensor: str
    bottleneck_tensor: str
    bottleneck_size: int
    image_size: int
    input_mean: float
    input_std: float
    legacy_cache_suffixes: tuple = ()

    @property
    def archive_name(self) -> str:
        return self.url.rsplit('/', 1)[1]


def architecture_info(name: str) -> Architecture:
    """The classic settings for an `--architecture` value; ConfigError (a usage error) if
    unknown."""
    lowered = name.lower()
    if lowered == 'inception_v3':
        # TF 1.0-1.4 caches had no suffix at all; they are read as well.
        return Architecture(name, INCEPTION_URL, 'classify_image_graph_def.pb', 'Mul:0',
                            'pool_3/_reshape:0', 2048, 299, 128.0, 128.0,
                            legacy_cache_suffixes=('',))
    match = _MOBILENET_NAME.fullmatch(lowered)
    if (not match or match['version'] not in MOBILENET_VERSIONS
            or int(match['size']) not in MOBILENET_SIZES):
        raise ConfigError(f'unknown architecture {name!r}; valid ones: {VALID_NAMES}')
    version, size = match['version'], int(match['size'])
    graph = 'quantized_graph.pb' if match['quantized'] else 'frozen_graph.pb'
    return Architecture(name, MOBILENET_URL.format(version=version, size=size),
                        f'mobilenet_v1_{version}_{size}/{graph}', 'input:0',
                        'MobilenetV1/Predictions/Reshape:0', 1001, size, 127.5, 127.5)


def read_archive_graph(archive: str, arch: Architecture) -> tf.compat.v1.GraphDef:
    """The graph file of `arch` read out of its archive; one-line ToolError if unusable."""
    damaged = f'delete {archive} to download it again, or replace it with a good copy'
    try:
        with tf.io.gfile.GFile(archive, 'rb') as f, tarfile.open(fileobj=f, mode='r:*') as tar:
            try:
                member = tar.extractfile(arch.graph_file)
            except KeyError:
                member = None
            if member is None:
                raise ToolError(f'model archive {archive} does not contain {arch.graph_file}; '
                                f'{damaged}')
            data = member.read()
    except (tarfile.TarError, EOFError, OSError, tf.errors.OpError) as e:
        # ReadError's own message is a multi-line list of the formats tried.
        reason = ('not a readable tar archive' if isinstance(e, tarfile.ReadError)
                  else error_summary(e))
        raise ToolError(f'model archive {archive} is damaged ({reason}); {damaged}') from None
    return graph_files.parse_graph_def(data, f'{arch.graph_file} in {archive}')


def load_graph(arch: Architecture, model_dir: str) -> Tuple[tf.compat.v1.GraphDef, str]:
    """The frozen graph of `arch` and where it came from, for messages.

    It is read from the archive in `model_dir`, downloaded there first if absent; without the
    archive, a graph file that a classic run extracted into `model_dir` is used.
    """
    archive = os.path.join(model_dir, arch.archive_name)
    extracted = os.path.join(model_dir, *arch.graph_file.split('/'))
    if not tf.io.gfile.exists(archive) and tf.io.gfile.exists(extracted):
        logging.info('Using the extracted graph %s', extracted)
        return graph_files.load_graph_def(extracted), extracted
    downloads.download(arch.url, archive)
    logging.info('Reading %s from %s', arch.graph_file, archive)
    return read_archive_graph(archive, arch), f'{arch.graph_file} in {archive}'


def _bottleneck_source(graph_def: tf.compat.v1.GraphDef, arch: Architecture, source: str) -> str:
    """The tensor to read: the bottleneck reshape's input when it is one, else the bottleneck."""
    name = arch.bottleneck_tensor.split(':')[0]
    node = next((n for n in graph_def.node if n.name == name), None)
    if node is None:
        raise ToolError(f'{source} is not a {arch.name} graph: it has no tensor '
                        f'{arch.bottleneck_tensor}')
    return node.input[0] + ':0' if node.op == 'Reshape' else arch.bottleneck_tensor


def adaptor_graph(graph_def: tf.compat.v1.GraphDef, arch: Architecture,
                  source: str) -> tf.compat.v1.GraphDef:
    """`images:0` [N, H, W, 3] in [0, 1] -> normalization -> the model -> `bottleneck:0` [N, D]."""
    size = arch.image_size
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, size, size, 3], name=_IMAGES)
        normalized = (images * 255.0 - arch.input_mean) * (1.0 / arch.input_std)
        try:
            features, = tf.graph_util.import_graph_def(
                graph_def, input_map={arch.input_tensor: normalized},
                return_elements=[_bottleneck_source(graph_def, arch, source)], name='model')
        except (ValueError, KeyError) as e:
            raise ToolError(f'{source} is not a {arch.name} graph: {error_summary(e)}') from None
        tf.reshape(features, [-1, arch.bottleneck_size], name=_BOTTLENECK)
    return graph.as_graph_def()


def adaptor_function(graph_def: tf.compat.v1.GraphDef,
                     image_size: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """The adaptor graph as a function of images; imported straight into the function's graph.

    (Importing the whole graph and pruning it to a feed and a fetch copies every op in Python
    again, several times slower; the input map makes pruning unnecessary.)
    """
    def imported(images):
        return tf.graph_util.import_graph_def(graph_def, input_map={f'{_IMAGES}:0': images},
                                              return_elements=[f'{_BOTTLENECK}:0'],
                                              name='adaptor')[0]

    return tf.compat.v1.wrap_function(
        imported, [tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])


def load(config: RetrainConfig) -> FeatureExtractor:
    """The model of `--architecture` in `--model_dir` (retrain.features.loading's entry point)."""
    size = architecture_info(config.architecture).image_size
    if config.image_size and config.image_size != size:  # As the Hub modules of fixed size say.
        logging.warning('--architecture %s has a fixed input size %dx%d; ignoring --image_size=%d',
                        config.architecture, size, size, config.image_size)
    return load_architecture(config.architecture, config.model_dir)


def load_architecture(architecture: str, model_dir: str) -> FeatureExtractor:
    """The classic `--architecture` model as a FeatureExtractor (see the module doc)."""
    arch = architecture_info(architecture)
    graph_def, source = load_graph(arch, model_dir)
    adaptor = adaptor_graph(graph_def, arch, source)
    size = arch.image_size
    try:
        bottlenecks = adaptor_function(adaptor, size)
        bottlenecks(tf.zeros([2, size, size, 3]))
    except (tf.errors.OpError, ValueError) as e:
        raise ToolError(f'{source} cannot be run as {arch.name}: {error_cause(e)}') from None
    logging.info('Architecture %s: input %dx%d at %s, bottleneck %s of size %d', arch.name, size,
                 size, arch.input_tensor, arch.bottleneck_tensor, arch.bottleneck_size)
    return FeatureExtractor(
        function=bottlenecks, image_size=(size, size), bottleneck_size=arch.bottleneck_size,
        cache_suffix='_' + architecture, description=f'{arch.name} frozen graph',
        legacy_cache_suffixes=arch.legacy_cache_suffixes,
        frozen=FrozenExtractor(adaptor, f'{_IMAGES}:0', f'{_BOTTLENECK}:0', bottlenecks))
