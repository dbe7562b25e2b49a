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


def load_extractor(config: RetrainConfig) -> FeatureExtractor:
    module = next(name for name, chosen in SOURCES if chosen(config))
    extractor = importlib.import_module(module).load(config)
    extractor.scaled_jpegs = config.fast_jpeg_decoding
    return extractor
