"""--calibrate: a temperature T fitted on the validation split so that the softmax scores mean
what they say (of images scored 0.8, about 80% are right).

T minimizes the validation images' negative log-likelihood of softmax(logits / T); accuracy
does not change (the order of the logits does not). It is baked into the layer itself: weights
and biases divided by T give logits / T in every output, and the unknown judgement (fitted
after) sees the same logits. Expected calibration error (ECE): the gap between confidence and
accuracy, averaged over equal-width confidence bins weighted by their share of images.
"""
from typing import Dict, List, Optional

import numpy as np

from retrain.train.heads import Head

# log T is searched in [-LOG_RANGE, LOG_RANGE]: temperatures from about 0.02 to 55.
LOG_RANGE = 4.0
EDGE = 0.01  # A log T this near the range's end is no minimum found.
ECE_BINS = 15


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    return float(-np.mean(_log_softmax(logits / temperature)[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> Optional[float]:
    """The T minimizing nll: golden-section search over log T (the NLL is unimodal in it).
    None where the images do not determine one: where every image is classified right, any
    smaller T looks better still (the search ran to about 0.02, or to wherever their NLL
    rounded to 0, which made a small run's scores 0.9999 on images it got wrong); and where
    the minimum lies at the range's edge."""
    logits = logits.astype(np.float64)
    if (logits.argmax(1) == labels).all():
        return None
    low, high = -LOG_RANGE, LOG_RANGE
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):  # The interval shrinks by 0.618 each time: far below 1e-6 at the end.
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if nll(logits, labels, np.exp(left)) < nll(logits, labels, np.exp(right)):
            high = right
        else:
            low = left
    found = (low + high) / 2
    return None if abs(found) > LOG_RANGE - EDGE else float(np.exp(found))


def reliability(probabilities: np.ndarray, labels: np.ndarray,
                bins: int = ECE_BINS) -> List[Dict]:
    """The reliability diagram's non-empty bins of the top score: each bin's confidence range,
    its images, their mean confidence and their accuracy."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [{'low': index / bins, 'high': (index + 1) / bins, 'images': int(chosen.sum()),
             'confidence': float(confidence[chosen].mean()),
             'accuracy': float(right[chosen].mean())}
            for index in range(bins) if (chosen := which == index).any()]


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE of the top score (module doc)."""
    return float(sum(b['images'] * abs(b['confidence'] - b['accuracy'])
                     for b in reliability(probabilities, labels, bins)) / max(len(labels), 1))


def calibrated(head: Head, temperature: float) -> Head:
    """The layer giving logits / temperature."""
    return type(head)((head.weights / temperature).astype(np.float32),
                      (head.biases / temperature).astype(np.float32))
