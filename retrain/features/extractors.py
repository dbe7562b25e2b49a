"""Feature extractors: the pretrained image model under the new layer, behind one interface.

Whatever the model (a TF2 SavedModel from TF Hub, a TF1 Hub module, a legacy frozen graph), the
rest of the pipeline sees a `FeatureExtractor`: images as float32 [N, H, W, 3] in [0, 1] go in,
bottlenecks [N, D] come out. Each kind applies its own normalization inside its function, so
callers never deal with means and standard deviations.
"""
import dataclasses
from typing import Callable, Optional, Sequence, Tuple

import tensorflow as tf

from retrain.common.tf_internals import convert_to_constants

SCALED_JPEGS_SUFFIX = '_scaled_jpegs'


@dataclasses.dataclass
class FrozenExtractor:
    """An extractor with its variables folded in as constants: one GraphDef, and a function.

    TensorFlow can then fold batch norms into convolutions and fuse more: MobileNet V2 runs about
    1.4x faster on CPU (bench/bench.py). The exported graph embeds `graph_def`, imported with
    `input_name` fed and `output_name` read; `function` runs it for caching.
    """
    graph_def: tf.compat.v1.GraphDef
    input_name: str
    output_name: str
    function: Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass
class FeatureExtractor:
    """A pretrained image model cut at its bottleneck.

    Attributes:
      function: maps float32 [N, H, W, 3] images in [0, 1] to float32 [N, D] bottlenecks;
        traceable by tf.function, so it can also be frozen into the exported graph.
      image_size: (height, width) the model expects.
      bottleneck_size: D.
      cache_suffix: appended to image file names in the bottleneck cache (`photo.jpg<suffix>.txt`);
        it names the model so caches of different models never mix.
      description: what was loaded, for logs.
      trainable_variables: the model's own variables, for fine-tuning; empty for frozen graphs.
      owner: the loaded object the function belongs to, kept alive with it.
      legacy_cache_suffixes: suffixes of older caches of the same model (TF 1.0-1.4 Inception
        caches have none), read when the `cache_suffix` file is missing and never rewritten.
      frozen: the model frozen (see `freeze`); given up front by models that come frozen.
      scaled_jpegs: bottlenecks not yet cached are computed from large JPEGs decoded scaled
        down (--fast_jpeg_decoding, retrain.data.image_io), and cached under `scaled_suffix`.
      training_function: the model in training mode, where it has one (a TF2 module's
        `training=True`), for fine-tuning as Keras' fit runs it.
    """
    function: Callable[[tf.Tensor], tf.Tensor]
    image_size: Tuple[int, int]
    bottleneck_size: int
    cache_suffix: str
    description: str
    trainable_variables: Sequence[tf.Variable] = ()
    owner: object = None
    legacy_cache_suffixes: Sequence[str] = ()
    frozen: Optional[FrozenExtractor] = None
    scaled_jpegs: bool = False
    training_function: Optional[Callable[[tf.Tensor], tf.Tensor]] = None

    @property
    def scaled_suffix(self) -> str:
        """The cache suffix of bottlenecks of JPEGs decoded scaled down: not the classic values,
        so never under the classic name (docs/COMPATIBILITY.md section 4)."""
        return self.cache_suffix + SCALED_JPEGS_SUFFIX

    def input_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([None, self.image_size[0], self.image_size[1], 3], tf.float32)

    def concrete_function(self):
        """The traced [None, H, W, 3] -> [None, D] function (traced once, then reused)."""
        if not hasattr(self, '_concrete'):
            self._concrete = tf.function(self.function, autograph=False).get_concrete_function(
                self.input_spec())
        return self._concrete

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return self.concrete_function()(images)

    def freeze(self) -> FrozenExtractor:
        """The model with the current values of its variables as constants.

        Freezing a large module takes seconds, so it is done once and shared by caching and every
        exported graph; whoever changes the variables (fine-tuning) sets `frozen` back to None.
        """
        if self.frozen is None:
            concrete = convert_to_constants.convert_variables_to_constants_v2(
                self.concrete_function())
            self.frozen = FrozenExtractor(canonical(concrete.graph.as_graph_def()),
                                          concrete.inputs[0].name,
                                          concrete.outputs[0].name,
                                          lambda images: concrete(images)[0])
        return self.frozen


def canonical(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """`graph_def` with the same nodes named and ordered the same in every process.

    Freezing a loaded SavedModel names each variable's constant by a number that differs from
    run to run (`13661` once, `14103` the next) and lists the nodes in varying order, so a graph
    exported with --random_seed would differ in its bytes (docs/COMPATIBILITY.md section 5).
    Each such constant is named after the first node (by name) that reads it (`<reader>/value`),
    and the nodes are sorted by name; graphs import in any order.
    """
    numbered = {node.name for node in graph_def.node if node.name.isdigit()}
    readers: dict = {}
    for node in sorted(graph_def.node, key=lambda n: n.name):
        for source in node.input:
            readers.setdefault(source.lstrip('^').split(':')[0], node.name)
    taken = {node.name for node in graph_def.node}
    names = {name: f'{readers[name]}/value' for name in numbered
             if name in readers and f'{readers[name]}/value' not in taken}
    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    del result.node[:]
    for node in sorted(graph_def.node, key=lambda n: names.get(n.name, n.name)):
        copy = result.node.add()
        copy.CopyFrom(node)
        copy.name = names.get(node.name, node.name)
        copy.input[:] = [_renamed(source, names) for source in node.input]
    return result


def _renamed(source: str, names: dict) -> str:
    """An input (`name`, `name:1` or `^name`) with its node's new name."""
    control = source.startswith('^')
    name, colon, port = source.lstrip('^').partition(':')
    return f'{"^" if control else ""}{names.get(name, name)}{colon}{port}'
