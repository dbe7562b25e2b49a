"""Knowing when an image is unlike the training images: the "unknown" judgement of a
single-label model.

The score, chosen by measurement (bench/bench_unknown.py), adds two standardized parts: the
relative Mahalanobis distance of an image's bottleneck (its squared distance to the nearest class
mean under the classes' shared covariance, minus its distance to the mean of all training images
under theirs: what is merely unusual about any photo cancels) and the spread of its logits (minus
the squared norm of the logits less their mean: a layer tells the classes it knows apart by
large logits of both signs, and sees little in what it was not taught). The distance is taken
between the bottlenecks' signed fourth roots (ROOT): pooled activations are skewed, most near 0
with a long tail, and a Mahalanobis distance assumes Gaussian classes; the root brings them
nearer (the power normalization of image retrieval). Each part is standardized by its spread on
the validation images, and the logits' part weighs 1.5 times as much (LOGITS_SHARE). The spread
is the limit of the energy (minus the logsumexp of the logits) at a high temperature, once
standardized, and did no worse than the energy at any temperature from 1 to 20: measured with
bench/bench_unknown.py on flower models shown real ants and bees photos, at the threshold that
flags 10% of unseen flowers, 77% of them flagged at 300 steps over ten draws of the folds (75%
with the energy in its place, 72% with the distance alone), and more of photos of other objects
too. Everything is fitted at the end of training from the cached bottlenecks; no image is read
again.

The score is shifted so that 0 is the default operating point: the threshold that a new image
like the reference ones exceeds with probability `VALIDATION_FLAGGED` (`threshold`; the
reference images are the validation images, with few of them the training images too, each
scored as an unseen image: `_held_out_parts`). 10% is the share of in-domain images that buys most
unlike ones: 74.7% of the ants and bees against 58.6% at 5% (bench_unknown, ten draws). An
image scoring above 0 is unknown; a client may compare with another number to move the
operating point (1 is one reference spread stricter).

Covariances are shrunk towards a multiple of the identity, Σ = (1 - a) S + a t I (S the sample
covariance, t its mean eigenvalue), and kept as their precision t' I - W Wᵀ, W [D, r] from S's
largest eigenvectors (exact when S has rank r or less, as with fewer than r + 1 training images;
beyond them S's spectrum is read as 0): a squared distance is then t' |v|² - |v W|², two matrix
products that every export format runs. `tf_score` builds the score in TensorFlow once for all
of them (retrain.export.frozen_graph adds it to the graph the other formats come from).
"""
import dataclasses
import math
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import tensorflow as tf

from retrain.common.graph_names import UNKNOWN, UNKNOWN_SCOPE, UNKNOWN_SCORE

SHRINKAGE = 0.9  # a: the share of each covariance replaced by its mean eigenvalue (measured).
# The logits' share of the two standardized parts (measured: see the module doc).
LOGITS_SHARE = 0.6
ROOT = 0.25  # Distances are taken between sign(x) |x| ** ROOT of bottlenecks x (module doc).
MAX_RANK = 256   # r: columns of W kept (the exported constants are D x r floats).
VALIDATION_FLAGGED = 0.10  # The default operating point: this share of reference images.
# Fewer validation images than this leave the operating point to chance: a high percentile of
# 9 scores is nearly their maximum (measured at a 5% point on 10 splits of 90 images: 0% to 41%
# of new in-domain images flagged). The held-out training images join them then.
MIN_REFERENCE = 100
# Held-out training images are scored in folds, each by statistics and a layer fitted without
# it: at least HELD_OUT_FOLDS folds (a fold holds at most a fifth of the training images), and
# as many more, up to MOST_FOLDS, as it takes for the validation images to fill a fold's place.
HELD_OUT_FOLDS = 5
MOST_FOLDS = 10
HELD_OUT_MOST = 1000  # Training images scored held out at most.
CHUNK_ROWS = 4096  # Bottlenecks taken in float64 at a time to fit the statistics.


@dataclasses.dataclass
class Precision:
    """Σ⁻¹ = scale I - factor factorᵀ."""
    scale: float
    factor: np.ndarray  # [D, r]


@dataclasses.dataclass
class Fitted:
    """What the score needs (module doc): score = (relative Mahalanobis) * weights[0] +
    (spread of the logits) * weights[1] + offset."""
    center: np.ndarray       # [D] the mean of all training bottlenecks' roots (`rooted`)
    class_means: np.ndarray  # [K, D] relative to `center`
    within: Precision        # shared by the classes
    background: Precision    # of all training images around `center`
    weights: Tuple[float, float] = (1.0, 0.0)
    offset: float = 0.0


class NoSpread(ValueError):
    """The images of every class have identical bottlenecks: there is no spread to measure an
    unusual image by."""


def _shrunk(values: np.ndarray, vectors: np.ndarray, mean_square: float,
            magnitude: float) -> Precision:
    """The Precision of the covariance with these eigenpairs and mean eigenvalue (the mean
    square of the centred rows); NoSpread where that is nothing beside `magnitude` (the mean
    square of the bottlenecks)."""
    order = np.argsort(values)[::-1][:MAX_RANK]
    values, vectors = values[order], vectors[:, order]
    floor = SHRINKAGE * mean_square
    if not floor > 1e-12 * magnitude:
        raise NoSpread()
    shrunk = (1 - SHRINKAGE) * values + floor
    factor = vectors * np.sqrt(np.maximum(1.0 / floor - 1.0 / shrunk, 0.0))
    return Precision(1.0 / floor, factor.astype(np.float32))


def _precision(centered: np.ndarray, magnitude: float) -> Precision:
    """The shrunk covariance of fewer rows than columns, already centred, as a Precision: S's
    eigenvectors from the smaller Gram matrix."""
    count, size = centered.shape
    values, vectors = np.linalg.eigh(centered @ centered.T / count)
    keep = values > values.max() * 1e-9
    values, vectors = values[keep], vectors[:, keep]
    vectors = centered.T @ vectors / np.sqrt(values * count)
    return _shrunk(values, vectors, float(np.sum(centered * centered)) / (count * size),
                   magnitude)


def _covariance_precision(covariance: np.ndarray, magnitude: float) -> Precision:
    values, vectors = np.linalg.eigh(covariance)
    return _shrunk(values, vectors, float(np.trace(covariance)) / len(covariance), magnitude)


def rooted(x: np.ndarray) -> np.ndarray:
    """The signed roots of bottlenecks that distances are measured between (ROOT), in float64."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.abs(x) ** ROOT


def _chunks(features: np.ndarray) -> Iterator[Tuple[slice, np.ndarray]]:
    """(rows, their roots) CHUNK_ROWS at a time: a large set is never copied whole in float64
    (100,000 bottlenecks of 1001 would take 800 MB a copy)."""
    for start in range(0, len(features), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        yield rows, rooted(features[rows])


def _statistics(features: np.ndarray, labels: np.ndarray, num_classes: int) -> Fitted:
    """The means and precisions of the roots of bottlenecks with their class indices. With more
    images than dimensions, both covariances come from sums taken chunk by chunk in one pass:
    the scatter around the overall mean is Σ x xᵀ - n c cᵀ, and the within-class scatter is that
    less the classes' around it, Σ n_k m_k m_kᵀ (m_k relative to c)."""
    count, size = features.shape
    sums = np.zeros((num_classes, size))
    gram = np.zeros((size, size)) if count >= size else None
    square_sum = 0.0
    for rows, roots in _chunks(features):
        sums += np.eye(num_classes)[labels[rows]].T @ roots
        square_sum += float(np.sum(roots * roots))
        if gram is not None:
            gram += roots.T @ roots
    counts = np.bincount(labels, minlength=num_classes)
    center = sums.sum(0) / count
    class_means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None] - center,
                           0.0)
    magnitude = square_sum / (count * size)
    if gram is None:
        centered = rooted(features) - center
        within = _precision(centered - class_means[labels], magnitude)
        background = _precision(centered, magnitude)
    else:
        scatter = gram - count * np.outer(center, center)
        between = (class_means * counts[:, None]).T @ class_means
        within = _covariance_precision((scatter - between) / count, magnitude)
        background = _covariance_precision(scatter / count, magnitude)
    return Fitted(center.astype(np.float32), class_means.astype(np.float32), within, background)


def held_out_count(validation: int, training: int) -> int:
    """How many training images join the reference images (module doc): none with
    MIN_REFERENCE validation images, or too few training images to hold any out."""
    if validation >= MIN_REFERENCE or training < 2 * HELD_OUT_FOLDS:
        return 0
    return min(training, HELD_OUT_MOST)


def held_out_folds(count: int, training: int, validation: int) -> int:
    """How many folds `count` held-out training images take (HELD_OUT_FOLDS): so many more
    fits, and layers trained again. With retrain's default split (8 training images to 1
    validation image), eight."""
    least = math.ceil(training / MOST_FOLDS)
    return math.ceil(count / max(1, least, min(training // HELD_OUT_FOLDS, validation)))


# A layer trained as the run's was, on these bottlenecks and class indices: (weights, biases).
LayerOn = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def _in_place_of(fold_labels: np.ndarray, validation_labels: np.ndarray,
                 num_classes: int) -> np.ndarray:
    """Indices of validation images to take a fold's place, class for class as far as there
    are some, drawn the same way for every fold."""
    order = np.random.default_rng(0).permutation(len(validation_labels))
    return np.concatenate([order[validation_labels[order] == k][:np.sum(fold_labels == k)]
                           for k in range(num_classes)]).astype(int)


def _held_out_parts(features: np.ndarray, labels: np.ndarray, num_classes: int,
                    layer_on: LayerOn, count: int, validation: np.ndarray,
                    validation_labels: np.ndarray) -> np.ndarray:
    """`parts` of `count` training rows, each with the statistics and the layer fitted without
    its fold, as an unseen image would score: in-sample, a bottleneck is near the means and
    inside the covariance it helped to make (with D above N it scores far too low), and the
    layer that learnt it is surer of it (held-out flower photos scored with the full layer's
    logits set the operating point so low that 13-20% of unseen flowers were called unknown).
    The validation images take the fold's place, so each fit has as many images as the run's
    own: fitted on fewer, means and covariances are less sure and an unseen image scores higher
    (retrain's default split, 500 flower photos: 8.1% of unseen flowers called unknown, where
    10% was meant, with five folds of fewer images; 9.9% so; bench_unknown --folds 10)."""
    held = np.random.default_rng(0).permutation(len(features))[:count]
    folds = held_out_folds(count, len(features), len(validation_labels))
    found = []
    for k in range(folds):
        rows = held[k::folds]
        kept = np.ones(len(features), bool)
        kept[rows] = False
        instead = _in_place_of(labels[rows], validation_labels, num_classes)
        fold_features = np.concatenate([features[kept], validation[instead]])
        fold_labels = np.concatenate([labels[kept], validation_labels[instead]])
        without = _statistics(fold_features, fold_labels, num_classes)
        weights, biases = layer_on(fold_features, fold_labels)
        scored = features[rows].astype(np.float64)
        found.append(parts(without, scored, scored @ weights + biases))
    return np.concatenate(found)


def fit(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, biases: np.ndarray,
        validation: Optional[np.ndarray] = None, validation_labels: Optional[np.ndarray] = None,
        layer_on: Optional[LayerOn] = None) -> Fitted:
    """The statistics from the training bottlenecks (labels: class indices) and the trained
    layer; standardization and operating point from reference images: the validation
    bottlenecks and `held_out_count` training ones, scored held out (`_held_out_parts`, their
    logits from `layer_on`, which trains the layer again on other images; without it, the
    layer does not depend on the training images; without validation_labels, no validation
    image takes a fold's place); the training ones as they are where there are neither.
    Raises NoSpread where the training images of each class (or of a fold's rest) are one
    bottleneck repeated."""
    model = _statistics(features, labels, weights.shape[1])
    validation = np.zeros((0, features.shape[1])) if validation is None else validation
    found = parts(model, validation, validation @ weights + biases)
    held_out = held_out_count(len(validation), len(features))
    if held_out:
        found = np.concatenate([found, _held_out_parts(
            features, labels, weights.shape[1], layer_on or (lambda x, y: (weights, biases)),
            held_out, validation, np.zeros(0, int) if validation_labels is None
            else np.asarray(validation_labels))])
    elif not len(found):
        found = parts(model, features, features.astype(np.float64) @ weights + biases)
    spread = np.maximum(found.std(0), 1e-12)
    model.weights = tuple(float(w) for w in
                          np.array([2 * (1 - LOGITS_SHARE), 2 * LOGITS_SHARE]) / spread)
    combined = found @ np.array(model.weights)
    model.offset = -threshold(combined, VALIDATION_FLAGGED)
    return model


def threshold(scores: np.ndarray, share: float) -> float:
    """The score that a new image like the reference ones exceeds with probability `share`,
    from the reference images' scores: the expected share of new scores above the k-th highest
    of n is k / (n + 1) (the Weibull plotting position). NumPy's default rank, (n - 1) share + 1
    from the top, stops about one image short: with 100 validation images it called 10.6% of
    unseen flowers unknown where 10% was meant."""
    return float(np.quantile(scores, 1 - share, method='weibull'))


def distances(precision: Precision, v: np.ndarray) -> np.ndarray:
    """Squared distances of the vectors v [..., D] under `precision`."""
    projected = v @ precision.factor.astype(np.float64)
    return precision.scale * np.sum(v * v, -1) - np.sum(projected * projected, -1)


def _nearest_class(precision: Precision, v: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Squared distance of each row of v [N, D] to its nearest row of means [K, D], expanded
    as tf_score expands it, so memory stays N x (D + K), not N x K x D."""
    factor = precision.factor.astype(np.float64)
    projected, projected_means = v @ factor, means @ factor
    cross = precision.scale * (v @ means.T) - projected @ projected_means.T
    to_class = (distances(precision, v)[:, None] - 2.0 * cross
                + distances(precision, means)[None, :])
    return to_class.min(1)


def parts(model: Fitted, x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """[N, 2]: relative Mahalanobis distance and spread of the logits of each row."""
    centered = rooted(x) - model.center
    relative = _nearest_class(model.within, centered, model.class_means.astype(np.float64))
    relative -= distances(model.background, centered)
    centred_logits = logits - logits.mean(1, keepdims=True)
    return np.stack([relative, -np.sum(centred_logits * centred_logits, 1)], 1)


def score(model: Fitted, x: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """[N] unknown scores of bottlenecks x with their logits: above 0 is unknown."""
    return parts(model, x, logits) @ np.array(model.weights) + model.offset


def tf_score(model: Fitted, bottlenecks: tf.Tensor, logits: tf.Tensor) -> None:
    """Adds `unknown_score` (float [N]) and `unknown` (bool [N], score > 0) to the current
    graph, as `score` computes them, with the squared distances expanded into products
    (x - m)ᵀP(x - m) = xᵀPx - 2 xᵀPm + mᵀPm, so no [N, K, D] tensor is made."""
    with tf.name_scope(UNKNOWN_SCOPE):
        centered = (tf.sign(bottlenecks) * tf.pow(tf.abs(bottlenecks), ROOT)
                    - tf.constant(model.center))
        within, background = model.within, model.background
        means = model.class_means.astype(np.float64)
        projected_means = means @ within.factor.astype(np.float64)
        mean_terms = (within.scale * np.sum(means * means, 1)
                      - np.sum(projected_means * projected_means, 1))
        # Precision times each mean, [D, K]: scale m - W (Wᵀ m).
        pulled = (within.scale * means - projected_means @ within.factor.T).T
        squares = tf.reduce_sum(tf.square(centered), 1)
        within_squares = tf.reduce_sum(tf.square(tf.matmul(centered, within.factor)), 1)
        to_class = ((within.scale * squares - within_squares)[:, tf.newaxis]
                    - 2.0 * tf.matmul(centered, tf.constant(pulled, tf.float32))
                    + tf.constant(mean_terms, tf.float32))
        nearest = tf.reduce_min(to_class, 1)
        background_squares = tf.reduce_sum(
            tf.square(tf.matmul(centered, background.factor)), 1)
        relative = nearest - (background.scale * squares - background_squares)
        centred_logits = logits - tf.reduce_mean(logits, 1, keepdims=True)
        spread = -tf.reduce_sum(tf.square(centred_logits), 1)
        combined = model.weights[0] * relative + model.weights[1] * spread
    scores = tf.add(combined, model.offset, name=UNKNOWN_SCORE)
    tf.greater(scores, 0.0, name=UNKNOWN)
