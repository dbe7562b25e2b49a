"""How training draws its batches, as the classic script did: a label uniformly (among those
some image of the split has), then uniformly one of the images that have it, with replacement.

A single-label image has one label, its class; a multi-label image has several, and is drawn
under each of them. Both are memberships (image, label), so one sampler serves both heads.
"""
from typing import Tuple

import numpy as np

# The classic sampler drew an image index below this and took it modulo the class size.
_INDEX_RANGE = 2 ** 27


def memberships(labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(label, image) index pairs, label by label and images in order within each: from class
    indices [n], or from 0/1 label rows [n, labels]."""
    if labels.ndim == 1:
        order = np.argsort(labels, kind='stable')
        return labels[order], order
    return np.nonzero(labels.T)


class Sampler:
    """Draws image indices of one split: a label uniformly, then one of its images."""

    def __init__(self, labels: np.ndarray, num_labels: int, rng: np.random.Generator):
        label_of, self.order = memberships(labels)
        counts = np.bincount(label_of, minlength=num_labels)
        self.labels = np.flatnonzero(counts)  # Labels no image of the split has are skipped.
        self.counts = counts[self.labels]
        self.offsets = np.concatenate([[0], np.cumsum(counts)])[self.labels]
        self.rng = rng
        self.size = len(labels)

    def sample(self, batch_size: int) -> np.ndarray:
        """`batch_size` indices drawn so; for -1, every image of the split once, in order (the
        classic scripts' whole-split batch, which --train_batch_size -1 asked for)."""
        if batch_size < 0:
            return np.arange(self.size)
        which = self.rng.integers(len(self.labels), size=batch_size)
        within = self.rng.integers(_INDEX_RANGE, size=batch_size) % self.counts[which]
        return self.order[self.offsets[which] + within]
