"""--calibrate: a temperature T fitted on the validation split so that the softmax scores mean
what they say (of images scored 0.8, about 80% are right).

T minimizes the validation images' negative log-likelihood of softmax(logits / T); accuracy
does not change (the order of the logits does not). It is baked into the layer itself: weights
and biases divided by T give logits / T in every output, and the unknown judgement (fitted
after) sees the same logits. Expected calibration error (ECE): the gap between confidence and
accuracy, averaged over equal-width confidence bins weighted by their share of images.
"""
import numpy as np

from retrain.train.heads import Head

# log T is searched in [-LOG_RANGE, LOG_RANGE]: temperatures from about 0.02 to 55.
LOG_RANGE = 4.0
ECE_BINS = 15


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    return float(-np.mean(_log_softmax(logits / temperature)[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T minimizing nll: golden-section search over log T (the NLL is unimodal in it)."""
    logits = logits.astype(np.float64)
    low, high = -LOG_RANGE, LOG_RANGE
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):  # The interval shrinks by 0.618 each time: far below 1e-6 at the end.
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if nll(logits, labels, np.exp(left)) < nll(logits, labels, np.exp(right)):
            high = right
        else:
            low = left
    return float(np.exp((low + high) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE of the top score (module doc)."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for index in range(bins):
        chosen = which == index
        if chosen.any():
            error += chosen.mean() * abs(confidence[chosen].mean() - right[chosen].mean())
    return float(error)


def calibrated(head: Head, temperature: float) -> Head:
    """The layer giving logits / temperature."""
    return type(head)((head.weights / temperature).astype(np.float32),
                      (head.biases / temperature).astype(np.float32))
