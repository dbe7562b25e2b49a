"""How good independent per-label scores are: mAP, macro F1, exact match.

`truth` is a 0/1 matrix [images, labels]; `scores` are sigmoid outputs of the same shape; a label
is predicted where its score is at least THRESHOLD (label_image's --threshold default). Average
precision only needs the order of the images, so it takes any increasing function of the scores:
the logits, which float32 sigmoids flatten to exactly 0 or 1 once a layer is confident.
"""
import numpy as np

THRESHOLD = 0.5


def predicted(scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    return scores >= threshold


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """The sum over distinct scores, highest first, of precision times the recall gained there
    (scikit-learn's average_precision_score): tied images form one step, counted together, so
    their order does not matter; nan for a label no image has."""
    positives = truth.sum()
    if not positives:
        return float('nan')
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind='stable')
    ranked, hits = scores[order], truth[order].astype(np.float64)
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True)  # Where each threshold step ends.
    true_positives = np.cumsum(hits)[last_of_tie]
    precision = true_positives / (np.flatnonzero(last_of_tie) + 1)
    recall_gained = np.diff(true_positives, prepend=0.0) / positives
    return float((precision * recall_gained).sum())


def mean_average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """The mean of the labels' average precisions, over labels that some image has; `scores`
    may be logits (see the module's docstring)."""
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


def best_cuts(truth: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per label, the logit cut (predicted where logit >= cut) that gets most images right: of
    0 (the 0.5 threshold) and the midpoints between the images' logits, the one nearest 0 among
    the best, so a label moves from 0.5 only where that helps on these images."""
    cuts = np.zeros(truth.shape[1])
    for j in range(truth.shape[1]):
        has = truth[:, j].astype(bool)
        values = np.unique(logits[:, j])
        candidates = np.concatenate([[0.0, values[0] - 1, values[-1] + 1],
                                     (values[1:] + values[:-1]) / 2])
        negatives, positives = np.sort(logits[~has, j]), np.sort(logits[has, j])
        right = (np.searchsorted(negatives, candidates, 'left')
                 + len(positives) - np.searchsorted(positives, candidates, 'left'))
        best = candidates[right == right.max()]
        cuts[j] = best[np.argmin(np.abs(best))]
    return cuts
