"""TF Hub image feature-vector modules (--tfhub_module) as feature extractors.

A handle is a URL, a hub handle, a local SavedModel folder or a local .tar.gz. TF2 SavedModels are
called through their `__call__`; modules in the TF1 Hub format through their `image_feature_vector`
(or `default`) signature. Their bottlenecks are cached under a suffix made from the handle as
typed, as the classic Hub-era script named them (docs/COMPATIBILITY.md section 4).
"""
import hashlib
import os
import tempfile
from typing import Callable, Optional, Tuple

import tensorflow as tf
from absl import logging

from retrain.common import downloads, places
from retrain.common.errors import ToolError, error_summary
from retrain.config import RetrainConfig
from retrain.features.extractors import FeatureExtractor

DEFAULT_IMAGE_SIZE = 224


def load(config: RetrainConfig) -> FeatureExtractor:
    """The module of `--tfhub_module` (retrain.features.loading's entry point)."""
    return load_hub_module(config.tfhub_module, config.image_size)


def hub_cache_suffix(handle: str) -> str:
    """`_` + the handle as typed, `://`, `/`, `:` and `\\` each replaced by `~` (classic Hub)."""
    name = handle.replace('://', '~')
    for character in ('/', ':', '\\'):
        name = name.replace(character, '~')
    return '_' + name


def _extract_local_archive(path: str) -> str:
    """Unpacks a local module .tar.gz once into a cache folder beside TF Hub's."""
    stat = os.stat(path)
    identity = f'{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime}'
    key = hashlib.sha1(identity.encode()).hexdigest()
    cache_root = os.environ.get('TFHUB_CACHE_DIR') or os.path.join(tempfile.gettempdir(),
                                                                   'tfhub_modules')
    return downloads.extract(path, os.path.join(cache_root, key))


def _resolve_handle(handle: str) -> str:
    if handle.endswith(('.tar.gz', '.tgz')) and os.path.isfile(handle):
        return _extract_local_archive(handle)
    return handle


def _load(handle: str):
    if not places.is_utf8(handle):
        raise ToolError(f'cannot load module {handle}: its name is not UTF-8, which TensorFlow '
                        'cannot open; rename it')
    try:
        path = _resolve_handle(handle)
        if not tf.io.gfile.isdir(path):  # A URL or hub handle: TF Hub downloads and caches it.
            import tensorflow_hub as hub  # Lazily: it imports Keras, about a second.
            return hub.load(path)
        return _load_folder(path)
    except ToolError:
        raise
    except Exception as e:  # noqa: BLE001  OSError, ValueError, URLError, OpError ...
        raise ToolError(f'cannot load module {handle}: {error_summary(e)}') from None


def _load_folder(path: str):
    """What `hub.load` does with a folder: a SavedModel, with no tags in the TF1 Hub format."""
    if not any(tf.io.gfile.exists(os.path.join(path, name))
               for name in ('saved_model.pb', 'saved_model.pbtxt')):
        raise ValueError(f'{path} holds no saved_model.pb')
    tf1_hub_format = tf.io.gfile.exists(os.path.join(path, 'tfhub_module.pb'))
    return tf.saved_model.load(path, tags=[] if tf1_hub_format else None)


def _tf2_call(module) -> Optional[Tuple[Callable, tf.TensorShape]]:
    """The module's own `__call__` and its image shape, for TF2 SavedModels."""
    call = getattr(module, '__call__', None)  # noqa: B004  The function itself, not a test.
    functions = getattr(call, 'concrete_functions', None) if callable(module) else None
    if not functions:
        return None
    args = functions[0].structured_input_signature[0]
    shape = args[0].shape if args and isinstance(args[0], tf.TensorSpec) else tf.TensorShape(None)
    return (lambda images: module(images)), shape


def _training_call(module) -> Optional[Callable]:
    """The module's `__call__` in training mode, where it was saved with one (TF Hub's
    `training` argument: batch normalization on the batch, its moving averages updated)."""
    call = getattr(module, '__call__', None)  # noqa: B004  The function itself, not a test.
    functions = getattr(call, 'concrete_functions', None) or ()
    if not any(len(f.structured_input_signature[0]) > 1
               and f.structured_input_signature[0][1] is True for f in functions):
        return None
    return lambda images: module(images, training=True)


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
        raise ToolError(f'module {handle} is not an image feature vector: it has neither a '
                        'callable nor an image_feature_vector/default signature taking images')
    call, shape = found
    dims = shape.as_list() if shape.rank is not None else [None, None, None, 3]
    if len(dims) != 4 or dims[3] not in (3, None):
        raise ToolError(f'module {handle} is not an image feature vector: it takes input of '
                        f'shape {dims}, not [batch, height, width, 3]')
    height, width = dims[1], dims[2]
    if image_size and height and (height, width) != (image_size, image_size):
        logging.warning('Module %s has a fixed input size %dx%d; ignoring --image_size=%d',
                        handle, height, width, image_size)
    size = (height or image_size or DEFAULT_IMAGE_SIZE, width or image_size or DEFAULT_IMAGE_SIZE)
    try:
        probe = call(tf.zeros([1, size[0], size[1], 3]))
    except Exception as e:  # noqa: BLE001  A module's own code may raise anything.
        raise ToolError(f'module {handle} is not an image feature vector: calling it on a '
                        f'{size[0]}x{size[1]} image failed ({type(e).__name__})') from None
    if not isinstance(probe, tf.Tensor) or probe.shape.rank != 2:
        shape_text = getattr(probe, 'shape', type(probe).__name__)
        raise ToolError(f'module {handle} is not an image feature vector: its output is '
                        f'{shape_text}, not [batch, features]')
    extractor = FeatureExtractor(
        function=call, image_size=size, bottleneck_size=int(probe.shape[1]),
        cache_suffix=hub_cache_suffix(handle), description=f'module {handle}',
        trainable_variables=tuple(getattr(module, 'trainable_variables', ())), owner=module,
        training_function=_training_call(module))
    logging.info('Module %s: input %dx%d, bottleneck size %d', handle, size[0], size[1],
                 extractor.bottleneck_size)
    return extractor
