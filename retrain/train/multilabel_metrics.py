"""How good independent per-label scores are: mAP, macro F1, exact match.

`truth` is a 0/1 matrix [images, labels]; `scores` are sigmoid outputs of the same shape; a label
is predicted where its score is at least THRESHOLD (label_image's --threshold default).
"""
import numpy as np

THRESHOLD = 0.5


def predicted(scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    return scores >= threshold


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """Mean precision at each positive's rank, images ranked by score (ties: worst order first,
    so a constant score earns nothing); nan for a label no image has."""
    positives = truth.sum()
    if not positives:
        return float('nan')
    order = np.lexsort((truth, -scores))  # Highest score first; among ties negatives first.
    hits = truth[order].astype(np.float64)
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at * hits).sum() / positives)


def mean_average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """The mean of the labels' average precisions, over labels that some image has."""
    values = [average_precision(truth[:, i], scores[:, i]) for i in range(truth.shape[1])]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float('nan')


def macro_f1(truth: np.ndarray, predictions: np.ndarray) -> float:
    """The mean over labels of 2TP / (2TP + FP + FN); labels neither present nor predicted
    (no evidence either way) are left out."""
    truth, predictions = truth.astype(bool), predictions.astype(bool)
    tp = (truth & predictions).sum(axis=0)
    wrong = (truth != predictions).sum(axis=0)
    counted = (2 * tp + wrong) > 0
    if not counted.any():
        return float('nan')
    return float(np.mean(2 * tp[counted] / (2 * tp[counted] + wrong[counted])))


def exact_match(truth: np.ndarray, predictions: np.ndarray) -> float:
    """The share of images whose predicted label set is exactly their label set."""
    return float(np.mean((truth.astype(bool) == predictions.astype(bool)).all(axis=1)))


def label_agreement(truth: np.ndarray, predictions: np.ndarray) -> float:
    """The share of (image, label) pairs predicted right: multi-label `accuracy`."""
    return float(np.mean(truth.astype(bool) == predictions.astype(bool)))
