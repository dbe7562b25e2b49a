"""Which pretrained model a run puts under its new layer: one entry per source of models.

A source is a module in retrain/features with `load(config) -> FeatureExtractor`; the first entry
whose test accepts the config is loaded. To add a backbone source (a Keras application, an ONNX
file...): its module and an entry here, before the catch-all hub entry.
"""
import importlib
from typing import Callable, Tuple

from retrain.config import RetrainConfig
from retrain.features.extractors import FeatureExtractor

SOURCES: Tuple[Tuple[str, Callable[[RetrainConfig], bool]], ...] = (
    # The classic legacy flags (--model_dir, --architecture without --tfhub_module).
    ('retrain.features.legacy_models', lambda config: config.use_legacy_model),
    ('retrain.features.hub_module', lambda config: True),
)


# --fast_jpeg_decoding's bottlenecks are not the classic values: cached under names of their own,
# so a run without it never reads them (docs/COMPATIBILITY.md section 4).
SCALED_JPEGS_SUFFIX = '_scaled_jpegs'


def load_extractor(config: RetrainConfig) -> FeatureExtractor:
    module = next(name for name, chosen in SOURCES if chosen(config))
    extractor = importlib.import_module(module).load(config)
    if config.fast_jpeg_decoding:
        extractor.scaled_jpegs = True
        extractor.cache_suffix += SCALED_JPEGS_SUFFIX
        extractor.legacy_cache_suffixes = ()
    return extractor
