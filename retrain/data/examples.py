"""The images of a run as the cache and training take them, whatever gave them their labels.

Every task (single-label class folders, the multi-label layouts) ends its gathering in a list of
Examples: where the image lies below the image folder, its split and its label. Its bottleneck
is cached at the same place below the bottleneck folder (retrain.cache.bottleneck_files), which
is where the classic scripts put it: `<class folder>/<image name><suffix>.txt`.
"""
import dataclasses
import os
from typing import List, Union

import numpy as np


@dataclasses.dataclass
class Example:
    """One image: `location` relative to the image folder (os.sep between folders), its split,
    and its label: a class index, or for a multi-label run a 0/1 float32 row over the labels."""
    location: str
    split: str
    label: Union[int, np.ndarray]

    def image(self, image_dir: str) -> str:
        return os.path.join(image_dir, self.location)


def in_cache_order(examples: List[Example], splits: List[str]) -> List[Example]:
    """Split by split, keeping the order within each: the order of the arrays in memory and in
    the cache's index, so that a split read from the index is one slice of it."""
    return [e for split in splits for e in examples if e.split == split]
