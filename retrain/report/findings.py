"""What a run's data holds that its accuracy hides: duplicates, split leaks, suspected label errors.

Everything comes from what the run already has, so it costs about a second on thousands of images:
- exact duplicates: files of the same size (one stat each) whose bytes hash the same; only files
  that share their size with another are read, so a warm run reads almost nothing;
- near-duplicates (re-encoded, resized, lightly cropped): bottlenecks whose cosine similarity is
  at least NEAR_DUPLICATE_COSINE. Up to EXACT_SEARCH_LIMIT images every pair is compared (in
  blocks of rows, so memory stays linear); beyond it, images are bucketed by random projections
  split at their median (several tables), and only pairs sharing a bucket are compared: linear
  in time and memory, approximate (bench/bench_report.py measures its recall);
- suspected label errors: a linear head is fitted in closed form (ridge regression on one-hot
  labels, on a random projection of the bottlenecks to PROJECTED_SIZE values) FOLDS times, each
  time without one fold, and scores the fold it did not see; its scores are calibrated into
  probabilities by one temperature. An image is suspect when that head puts it in another
  class with at least that class's typical confidence (the per-class thresholds of confident
  learning, Northcutt et al. 2021), most suspicious (lowest probability
  of its given label) first. With --multi_label, the same head scores each label on its own
  (0/1 targets) and each score is calibrated by a logistic fit; an (image, label) is suspect
  when the given label is absent but the image scores at least as high as that label's images
  do on average, or present but at most as high as the images without it do.
"""
import concurrent.futures
import dataclasses
import hashlib
import os
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import tensorflow as tf

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common.places import is_local
from retrain.data.image_lists import CATEGORIES

# Tuned on planted copies of flower photos with MobileNet V2: re-encoded and lightly cropped copies
# score 0.90-0.99, distinct photos of one species at most 0.88 (README, "Reading the report").
NEAR_DUPLICATE_COSINE = 0.89
EXACT_SEARCH_LIMIT = 5000
BUCKET_SIZE = 256
HASH_TABLES = 8
FOLDS = 5
PROJECTED_SIZE = 256
_ROWS = 1024  # Rows of a similarity block: _ROWS x bucket floats at a time.
_HASH_THREADS = 8


@dataclasses.dataclass
class DuplicateGroup:
    """Images showing one photo: indices into the run's images, whether all bytes match, and
    how many of them share their bytes with another (a near group may hold byte copies too)."""
    members: List[int]
    exact: bool
    similarity: float  # The lowest cosine of the pairs that joined the group.
    same_bytes: int = 0


@dataclasses.dataclass
class LabelIssue:
    index: int
    given: int
    suggested: int
    confidence: float  # Cross-validated probability of the suggested class.
    given_probability: float


@dataclasses.dataclass
class MissingOrWrongLabel:
    """--multi_label: an (image, label) whose cross-validated score contradicts what was given."""
    index: int
    label: int
    given: bool  # Whether the image was given the label.
    probability: float  # Cross-validated probability that the image has it.


@dataclasses.dataclass
class Findings:
    paths: List[str]
    labels: np.ndarray
    splits: List[str]
    duplicates: List[DuplicateGroup]
    label_issues: List[Union[LabelIssue, MissingOrWrongLabel]]  # The latter for label rows.
    approximate: bool  # Near-duplicates by buckets (more than EXACT_SEARCH_LIMIT images).

    def spans_splits(self, group: DuplicateGroup) -> bool:
        """Training and validation/testing share the photo: their accuracy is inflated."""
        splits = {self.splits[i] for i in group.members}
        return 'training' in splits and len(splits) > 1

    def spans_classes(self, group: DuplicateGroup) -> bool:
        """Copies of one photo were given different classes (different label sets)."""
        return len({self.labels[i].tobytes() for i in group.members}) > 1


def _flatten(data: Bottlenecks) -> Tuple[np.ndarray, np.ndarray, List[str], List[str]]:
    """All splits as one array of unit-length rows (one copy, normalized in place)."""
    features = np.concatenate([data.features[c] for c in CATEGORIES]).astype(np.float32)
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    labels = np.concatenate([data.labels[c] for c in CATEGORIES])
    paths = [p for c in CATEGORIES for p in data.paths[c]]
    splits = [c for c in CATEGORIES for _ in data.paths[c]]
    return features, labels, paths, splits


def _open(path: str):
    """Local files through the OS (a gfile stat or open costs several times more), others gfile."""
    return open(path, 'rb') if is_local(path) else tf.io.gfile.GFile(path, 'rb')


def _size(path: str) -> Optional[int]:
    """The file's size; None if it is gone or unreadable (deleted since it was listed, say)."""
    try:
        return os.path.getsize(path) if is_local(path) else tf.io.gfile.stat(path).length
    except (OSError, tf.errors.OpError):
        return None


def _digest(path: str) -> Optional[bytes]:
    try:
        with _open(path) as f:
            return hashlib.sha256(f.read()).digest()
    except (OSError, tf.errors.OpError):
        return None


def exact_duplicate_pairs(paths: Sequence[str]) -> List[Tuple[int, int]]:
    """Pairs (first, other) of files with identical bytes; reads only files of a shared size.
    A file that can no longer be read (its bottleneck was cached) is nobody's duplicate, nor is
    a file listed twice (make_image_classifier's overlapping splits) its own."""
    listed = _listed_before(paths)
    with concurrent.futures.ThreadPoolExecutor(_HASH_THREADS) as pool:
        sizes = list(pool.map(_size, paths))
        by_size: Dict[int, List[int]] = {}
        for i, size in enumerate(sizes):
            if size is not None and i not in listed:
                by_size.setdefault(size, []).append(i)
        candidates = [i for same in by_size.values() if len(same) > 1 for i in same]
        digests = dict(zip(candidates, pool.map(lambda i: _digest(paths[i]), candidates)))
    first: Dict[bytes, int] = {}
    pairs = []
    for i in candidates:
        if digests[i] is None:
            continue
        j = first.setdefault(digests[i], i)
        if j != i:
            pairs.append((j, i))
    return pairs


def _listed_before(paths: Sequence[str]) -> Set[int]:
    """The indices of paths listed earlier already: the same file, not a copy of it."""
    first: Dict[str, int] = {}
    return {i for i, path in enumerate(paths) if first.setdefault(path, i) != i}


def _buckets(unit: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> List[np.ndarray]:
    """Groups of `rows` (indices of unit) of about BUCKET_SIZE: each bit is a random projection
    split at its median, so similar rows mostly share a bucket and buckets stay balanced."""
    bits = int(np.ceil(np.log2(len(rows) / BUCKET_SIZE)))
    projected = (unit @ rng.standard_normal((unit.shape[1], bits)).astype(np.float32))[rows]
    codes = (projected > np.median(projected, axis=0)) @ (1 << np.arange(bits))
    order = np.argsort(codes, kind='stable')
    return np.split(rows[order], np.flatnonzero(np.diff(codes[order])) + 1)


def _similar_within(unit: np.ndarray, members: np.ndarray, threshold: float):
    """(i, j, cosine) of the pairs of `members` at or above `threshold`, i before j."""
    found = []
    for start in range(0, len(members), _ROWS):
        rows = members[start:start + _ROWS]
        block = unit[rows] @ unit[members[start:]].T
        block[np.tril_indices(len(rows), m=block.shape[1])] = -1.0  # Self and earlier pairs.
        r, c = np.nonzero(block >= threshold)
        found.append((rows[r], members[start + c], block[r, c]))
    return found


def near_duplicate_pairs(unit: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE,
                         seed: int = 0, rows: Optional[np.ndarray] = None
                         ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) arrays of the pairs of `rows` of `unit` (unit-length rows; all of them by
    default) at or above `threshold`: all of them up to EXACT_SEARCH_LIMIT rows, most beyond."""
    n = len(unit)
    rows = np.arange(n) if rows is None else rows
    if len(rows) <= EXACT_SEARCH_LIMIT:
        groups = [rows]
    else:
        rng = np.random.default_rng(seed)
        groups = [bucket for _ in range(HASH_TABLES) for bucket in _buckets(unit, rows, rng)]
    found = [part for members in groups for part in _similar_within(unit, members, threshold)]
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, cosine = (np.concatenate(parts) for parts in zip(*found))
    first, keep = np.unique(np.minimum(i, j) * n + np.maximum(i, j), return_index=True)
    return first // n, first % n, cosine[keep]


def _component_labels(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """For each of 0..n-1, the lowest index of its connected component in the graph of edges
    (left[k], right[k]): labels spread along the edges, then jump to their label's label, until
    none changes. In arrays, as a group of m near-identical images has m^2 / 2 edges (a Python
    dict of them held 200 bytes each)."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[left], label[right])
        spread = label.copy()
        np.minimum.at(spread, left, low)
        np.minimum.at(spread, right, low)
        spread = spread[spread]
        if np.array_equal(spread, label):
            return label
        label = spread


def duplicate_groups(unit: np.ndarray, paths: Sequence[str],
                     threshold: float = NEAR_DUPLICATE_COSINE) -> List[DuplicateGroup]:
    """Exact and near-duplicates joined into groups of one photo each.

    A byte-identical copy has the bottleneck of its first image, so only first images are
    searched for near-duplicates: 3,000 copies of one placeholder image among 20,000 made 4.5
    million pairs, 2.7 GB and 14 s."""
    exact = exact_duplicate_pairs(paths)
    copies = {k for _, k in exact} | _listed_before(paths)  # Not searched: they add nothing.
    i, j, cosine = near_duplicate_pairs(unit, threshold, rows=np.array(
        [k for k in range(len(paths)) if k not in copies], np.int64))
    pairs = np.array(exact, np.int64).reshape(-1, 2)
    left, right = np.concatenate([i, pairs[:, 0]]), np.concatenate([j, pairs[:, 1]])
    label = _component_labels(len(paths), left, right)
    lowest = np.ones(len(paths), np.float32)  # The lowest cosine of each component's edges.
    np.minimum.at(lowest, label[left], np.concatenate([cosine, np.ones(len(pairs), np.float32)]))
    members_of: Dict[int, List[int]] = {}
    for k in np.unique(np.concatenate([left, right])).tolist():
        members_of.setdefault(int(label[k]), []).append(k)
    same_bytes = set(pairs.ravel().tolist())
    exact_root = {b: a for a, b in exact}
    return [DuplicateGroup(members, set(members) <= same_bytes
                           and len({exact_root.get(k, k) for k in members}) == 1,
                           float(lowest[root]), len(same_bytes.intersection(members)))
            for root, members in sorted(members_of.items())]


def out_of_fold_probabilities(unit: np.ndarray, labels: np.ndarray, num_classes: int,
                              folds: int = FOLDS, ridge: float = 1.0) -> np.ndarray:
    """float [N, classes]: for each image, the calibrated scores of a linear head fitted without
    its fold (out_of_fold_scores)."""
    targets = np.eye(num_classes, dtype=np.float32)[labels]
    return _calibrated(out_of_fold_scores(unit, targets, folds, ridge), labels)


def out_of_fold_scores(unit: np.ndarray, targets: np.ndarray, folds: int = FOLDS,
                       ridge: float = 1.0) -> np.ndarray:
    """float [N, targets]: for each image, the scores of a ridge regression on `targets` fitted
    without its fold. Rows are first projected on PROJECTED_SIZE random directions (a fold's
    solve costs size^3: 1281^3 took seconds on a busy CPU; the ranking stays about as good). One
    Gram matrix for all; each fold subtracts its own rows: N size^2 + folds size^3."""
    if unit.shape[1] > PROJECTED_SIZE:
        directions = np.random.default_rng(0).standard_normal((unit.shape[1], PROJECTED_SIZE))
        unit = unit @ (directions / np.sqrt(PROJECTED_SIZE)).astype(np.float32)
    n, size = unit.shape
    x = np.concatenate([unit, np.ones((n, 1), np.float32)], axis=1)
    gram, moment = x.T @ x, x.T @ targets
    fold = np.random.default_rng(0).permutation(n) % folds
    scores = np.zeros(targets.shape, np.float32)
    regularizer = ridge * np.eye(size + 1, dtype=np.float32)
    for k in range(folds):
        held = fold == k
        if not held.any() or held.all():
            continue
        xk = x[held]
        weights = np.linalg.solve(gram - xk.T @ xk + regularizer,
                                  moment - xk.T @ targets[held])
        scores[held] = xk @ weights
    return scores


def _calibrated(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax of scores times the temperature (of a log-spaced grid) that fits labels best."""
    best, best_loss = None, np.inf
    for temperature in np.geomspace(0.5, 100, 40):
        logits = scores * temperature
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -log_p[np.arange(len(labels)), labels].mean()
        if loss < best_loss:
            best, best_loss = np.exp(log_p), loss
    return best


def label_issues(probabilities: np.ndarray, labels: np.ndarray) -> List[LabelIssue]:
    """Images whose most probable class is another one, at least as confidently as that class's
    own images are on average; lowest probability of the given label first."""
    rows = np.arange(len(labels))
    num_classes = probabilities.shape[1]
    thresholds = np.array([probabilities[labels == c, c].mean() if (labels == c).any() else 1.0
                           for c in range(num_classes)])
    suggested = probabilities.argmax(axis=1)
    confident = probabilities[rows, suggested] >= thresholds[suggested]
    suspect = np.flatnonzero((suggested != labels) & confident)
    suspect = suspect[np.argsort(probabilities[suspect, labels[suspect]], kind='stable')]
    return [LabelIssue(int(i), int(labels[i]), int(suggested[i]),
                       float(probabilities[i, suggested[i]]), float(probabilities[i, labels[i]]))
            for i in suspect]


def _per_label_calibrated(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each column of scores mapped to probabilities by a logistic fit a * score + b to its
    labels (Platt scaling; a few Newton steps, slightly regularized so that a label perfectly
    separated stays finite)."""
    probabilities = np.zeros(scores.shape, np.float64)
    for j in range(scores.shape[1]):
        s, y = scores[:, j].astype(np.float64), truth[:, j].astype(np.float64)
        design = np.stack([s, np.ones_like(s)], axis=1)
        ab = np.zeros(2)
        for _ in range(25):
            p = 1 / (1 + np.exp(-(design @ ab)))
            hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-3 * np.eye(2)
            ab -= np.linalg.solve(hessian, design.T @ (p - y) + 1e-3 * ab)
        probabilities[:, j] = 1 / (1 + np.exp(-(design @ ab)))
    return probabilities


def missing_or_wrong_labels(probabilities: np.ndarray,
                            truth: np.ndarray) -> List[MissingOrWrongLabel]:
    """(image, label) pairs whose probability contradicts the given label at least as strongly
    as the label's own images support it on average (confident learning's per-class
    thresholds, per label and both ways); strongest contradiction first."""
    given = truth.astype(bool)
    found = []
    for j in range(truth.shape[1]):
        p, has = probabilities[:, j], given[:, j]
        if not has.any() or has.all():
            continue
        missing = ~has & (p >= p[has].mean())
        wrong = has & (p <= p[~has].mean())
        found += [MissingOrWrongLabel(int(i), j, bool(has[i]), float(p[i]))
                  for i in np.flatnonzero(missing | wrong)]
    return sorted(found, key=lambda f: -abs(f.given - f.probability))


def find(data: Bottlenecks, num_classes: int) -> Findings:
    """All findings of a run's bottlenecks and image files; labels are classes [N] or, with
    --multi_label, 0/1 rows [N, labels]."""
    unit, labels, paths, splits = _flatten(data)
    groups = duplicate_groups(unit, paths)
    issues: List[Union[LabelIssue, MissingOrWrongLabel]] = []
    if len(labels) >= 2 * FOLDS and labels.ndim == 2:
        scores = out_of_fold_scores(unit, labels.astype(np.float32))
        issues = missing_or_wrong_labels(_per_label_calibrated(scores, labels), labels)
    elif len(labels) >= 2 * FOLDS:
        issues = label_issues(out_of_fold_probabilities(unit, labels, num_classes), labels)
    return Findings(paths, labels, splits, groups, issues, len(unit) > EXACT_SEARCH_LIMIT)
