"""Feature extractors: the pretrained image model under the new layer, behind one interface.

Whatever the model (a TF2 SavedModel from TF Hub, a TF1 Hub module, a legacy frozen graph), the
rest of the pipeline sees a `FeatureExtractor`: images as float32 [N, H, W, 3] in [0, 1] go in,
bottlenecks [N, D] come out. Each kind applies its own normalization inside its function, so
callers never deal with means and standard deviations.
"""
import dataclasses
import hashlib
import os
import tempfile
from typing import Callable, Optional, Sequence, Tuple

import tensorflow as tf
from absl import logging
from tensorflow.python.framework import convert_to_constants

from retrain.common import downloads
from retrain.common.errors import RetrainError, error_summary

DEFAULT_IMAGE_SIZE = 224


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

    def input_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec([None, self.image_size[0], self.image_size[1], 3], tf.float32)

    def concrete_function(self):
        """The traced [None, H, W, 3] -> [None, D] function (traced once, then reused)."""
        if not hasattr(self, '_concrete'):
            self._concrete = tf.function(self.function).get_concrete_function(self.input_spec())
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
            self.frozen = FrozenExtractor(concrete.graph.as_graph_def(), concrete.inputs[0].name,
                                          concrete.outputs[0].name,
                                          lambda images: concrete(images)[0])
        return self.frozen


def hub_cache_suffix(handle: str) -> str:
    """`_` + the handle as typed with `://`, `/`, `:` and `\\` each replaced by `~` (classic Hub)."""
    name = handle.replace('://', '~')
    for character in ('/', ':', '\\'):
        name = name.replace(character, '~')
    return '_' + name


def _extract_local_archive(path: str) -> str:
    """Unpacks a local module .tar.gz once into a cache folder beside TF Hub's."""
    stat = os.stat(path)
    key = hashlib.sha1(f'{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime}'.encode()).hexdigest()
    cache_root = os.environ.get('TFHUB_CACHE_DIR') or os.path.join(tempfile.gettempdir(),
                                                                   'tfhub_modules')
    return downloads.extract(path, os.path.join(cache_root, key))


def _resolve_handle(handle: str) -> str:
    if handle.endswith(('.tar.gz', '.tgz')) and os.path.isfile(handle):
        return _extract_local_archive(handle)
    return handle


def _load(handle: str):
    import tensorflow_hub as hub  # Imported lazily: legacy mode and label_image never need it.
    try:
        return hub.load(_resolve_handle(handle))
    except RetrainError:
        raise
    except Exception as e:  # hub raises many types: OSError, ValueError, URLError, OpError ...
        raise RetrainError(f'cannot load module {handle}: {error_summary(e)}') from None


def _tf2_call(module) -> Optional[Tuple[Callable, tf.TensorShape]]:
    """The module's own `__call__` and its image shape, for TF2 SavedModels."""
    call = getattr(module, '__call__', None)
    functions = getattr(call, 'concrete_functions', None) if callable(module) else None
    if not functions:
        return None
    args = functions[0].structured_input_signature[0]
    shape = args[0].shape if args and isinstance(args[0], tf.TensorSpec) else tf.TensorShape(None)
    return (lambda images: module(images)), shape


def _tf1_signature(module) -> Optional[Tuple[Callable, tf.TensorShape]]:
    """The `image_feature_vector` (or `default`) signature of a module in the TF1 Hub format."""
    signatures = getattr(module, 'signatures', {})
    for name in ('image_feature_vector', 'default'):
        if name in signatures:
            signature = signatures[name]
            spec = signature.structured_input_signature[1].get('images')
            if spec is None:
                continue

            def call(images, signature=signature):
                outputs = signature(images=images)
                return outputs['default'] if 'default' in outputs else next(iter(outputs.values()))
            return call, spec.shape
    return None


def load_hub_module(handle: str, image_size: int = 0) -> FeatureExtractor:
    """Loads a TF Hub image feature-vector module (URL, hub handle, local folder or .tar.gz).

    The input size comes from the module's signature; `image_size` is used only for modules that
    accept any size (and defaults to 224 there). The bottleneck size comes from running it once.
    """
    logging.info('Loading module %s', handle)
    module = _load(handle)
    found = _tf2_call(module) or _tf1_signature(module)
    if found is None:
        raise RetrainError(f'module {handle} is not an image feature vector: it has neither a '
                           'callable nor an image_feature_vector/default signature taking images')
    call, shape = found
    dims = shape.as_list() if shape.rank is not None else [None, None, None, 3]
    if len(dims) != 4 or dims[3] not in (3, None):
        raise RetrainError(f'module {handle} is not an image feature vector: it takes input of '
                           f'shape {dims}, not [batch, height, width, 3]')
    height, width = dims[1], dims[2]
    if image_size and height and (height, width) != (image_size, image_size):
        logging.warning('Module %s has a fixed input size %dx%d; ignoring --image_size=%d',
                        handle, height, width, image_size)
    size = (height or image_size or DEFAULT_IMAGE_SIZE, width or image_size or DEFAULT_IMAGE_SIZE)
    try:
        probe = call(tf.zeros([1, size[0], size[1], 3]))
    except Exception as e:  # pylint: disable=broad-except
        raise RetrainError(f'module {handle} is not an image feature vector: calling it on a '
                           f'{size[0]}x{size[1]} image failed ({type(e).__name__})') from None
    if not isinstance(probe, tf.Tensor) or probe.shape.rank != 2:
        shape_text = getattr(probe, 'shape', type(probe).__name__)
        raise RetrainError(f'module {handle} is not an image feature vector: its output is '
                           f'{shape_text}, not [batch, features]')
    extractor = FeatureExtractor(
        function=call, image_size=size, bottleneck_size=int(probe.shape[1]),
        cache_suffix=hub_cache_suffix(handle), description=f'module {handle}',
        trainable_variables=tuple(getattr(module, 'trainable_variables', ())), owner=module)
    logging.info('Module %s: input %dx%d, bottleneck size %d', handle, size[0], size[1],
                 extractor.bottleneck_size)
    return extractor
