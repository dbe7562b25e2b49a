"""The in-process bottleneck cache that a Beam or Dask fill is held against (bench_beam_cache,
bench_dask): filled and timed the same way for both, and compared file by file."""
import time
from typing import List, Sequence, Tuple

import numpy as np

from retrain.cache import bottleneck_files
from retrain.cache.beam_fill import Job
from retrain.data import image_lists
from retrain.data.examples import Example
from retrain.features.extractors import FeatureExtractor
from retrain.features.hub_module import load_hub_module
from retrain.tasks.single_label import examples_of


def in_process_cache(image_dir: str, module: str,
                     folder: str) -> Tuple[List[Example], FeatureExtractor, float]:
    """Every photo of `image_dir` (classic 10/10 split) cached into `folder` in this process:
    (the examples, the loaded module, the seconds it took)."""
    examples = examples_of(image_lists.create_image_lists(image_dir, 10, 10))
    extractor = load_hub_module(module)
    started = time.perf_counter()
    bottleneck_files.load_or_compute(image_dir, examples, folder, extractor)
    return examples, extractor, time.perf_counter() - started


def differences(jobs: Sequence[Job], other_dir: str, local_dir: str,
                size: int) -> Tuple[float, int]:
    """The largest difference between a job's cache file under `other_dir` and its in-process
    twin under `local_dir`, and how many of the pairs are byte-identical."""
    largest, identical = 0.0, 0
    for job in jobs:
        local_path = job.cache.replace(other_dir, local_dir, 1)
        with open(job.cache, encoding='utf-8') as a, open(local_path, encoding='utf-8') as b:
            other_text, local_text = a.read(), b.read()
        identical += other_text == local_text
        largest = max(largest, float(np.max(np.abs(
            bottleneck_files.parse_values(other_text, size)
            - bottleneck_files.parse_values(local_text, size)))))
    return largest, identical
