"""The run report: what the data and the model look like, in the log of every run and, with
--report_dir, as a page (index.html) and a file for scripts (report.json).

The findings (retrain.report.findings) come from what the run already holds; this module logs them,
gathers the rest of the picture (per-class accuracy, confusion matrix, misclassified test images,
training curves, skipped files) and hands it to retrain.report.page to write. A --multi_label
run's report has per-label counts, AP and F1, how often labels go together, and the test images
whose predicted label set differs, in place of the per-class accuracy and the confusion matrix.
"""
import dataclasses
import os
import time
import types
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks, Skipped
from retrain.config import RetrainConfig
from retrain.data.image_lists import CATEGORIES
from retrain.report import findings, page
from retrain.train import calibration, multilabel_metrics, unknown
from retrain.train.heads import Head

# What a run's `Final test` lines said, as report.json's `metrics` keys: `test_accuracy` (None
# without test images), `test_images` (the N of the lines: all test images, or the
# --test_batch_size drawn) and, for --multi_label, `test_map`, `test_macro_f1`,
# `test_exact_match`. The report repeats the lines rather than measuring again: with
# --test_batch_size they measure a draw, and the report must not say another figure.
Tested = Mapping[str, Optional[float]]
UNTESTED: Tested = types.MappingProxyType({'test_accuracy': None, 'test_images': 0})


def _log(found: findings.Findings) -> None:
    """The lines every run prints (unless --noreport)."""
    groups = found.duplicates
    exact = sum(g.exact for g in groups)
    mixed = sum(bool(g.same_bytes) and not g.exact for g in groups)
    logging.info('Report: %d duplicate group(s) (%d exact, %d near%s) among %d images',
                 len(groups), exact, len(groups) - exact,
                 f', {mixed} of them with byte-identical copies too' if mixed else '',
                 len(set(found.paths)))
    if found.approximate:
        logging.info('Report: more than %d images: near-duplicates were searched in buckets of '
                     'similar images (a few may be missed)', findings.EXACT_SEARCH_LIMIT)
    leaks = sum(found.spans_splits(g) for g in groups)
    if leaks:
        logging.warning('Report: %d duplicate group(s) span training and validation/testing: test '
                        'accuracy is inflated by these', leaks)
    multi_label = found.labels.ndim == 2
    conflicts = sum(found.spans_classes(g) for g in groups)
    if conflicts:
        logging.warning('Report: %d duplicate group(s) span different %s: conflicting labels',
                        conflicts, 'label sets' if multi_label else 'classes')
    logging.info('Report: %d suspected label error(s): a cross-validated head confidently %s',
                 len(found.label_issues),
                 'contradicts the given label' if multi_label else 'puts them in another class')


def read_curves(summaries_dir: str) -> Dict[str, Dict[str, List[Tuple[int, float]]]]:
    """{'train'|'validation': {tag: [(step, value)]}} from the run's TensorBoard event files."""
    curves: Dict[str, Dict[str, List[Tuple[int, float]]]] = {}
    for run in ('train', 'validation'):
        folder = os.path.join(summaries_dir, run) if summaries_dir else ''
        if not folder or not tf.io.gfile.isdir(folder):
            continue
        for name in sorted(tf.io.gfile.listdir(folder)):
            for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.tensor.float_val:
                        curves.setdefault(run, {}).setdefault(value.tag, []).append(
                            (int(event.step), float(value.tensor.float_val[0])))
    return curves


def _test_results(data: Bottlenecks, head: Head, labels: List[str]) -> Dict:
    """Per-class counts and test accuracy, the confusion matrix, the misclassified test images."""
    y = data.labels['testing']
    probabilities = head.predict(data.features['testing']) if len(y) else np.zeros((0, len(labels)))
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_class = []
    for c, label in enumerate(labels):
        counts = {split: int((data.labels[split] == c).sum()) for split in CATEGORIES}
        tested = counts['testing']
        per_class.append({'label': label, **counts,
                          'test_accuracy': float(confusion[c, c] / tested) if tested else None})
    misclassified = [{'path': data.paths['testing'][i], 'given': labels[y[i]],
                      'predicted': labels[predicted[i]],
                      'confidence': float(probabilities[i, predicted[i]])}
                     for i in np.flatnonzero(predicted != y)]
    misclassified.sort(key=lambda m: -m['confidence'])
    return {'per_class': per_class, 'confusion_matrix': confusion.tolist(),
            'misclassified': misclassified}


def _confidence(data: Bottlenecks, head: Head, judgement: Optional[unknown.Fitted]) -> Dict:
    """How far the scores can be trusted: the reliability diagram of the test images (of the
    validation ones without any) and, where the model carries the unknown judgement, the share of
    each split it calls unknown at the default operating point (retrain.train.unknown)."""
    split = 'testing' if len(data.labels['testing']) else 'validation'
    x, y = data.features[split], data.labels[split]
    probabilities = head.predict(x) if len(y) else np.zeros((0, head.biases.size))
    result = {'split': split, 'images': int(len(y)),
              'expected_calibration_error': (calibration.expected_calibration_error(
                  probabilities, y) if len(y) else None),
              'bins': calibration.reliability(probabilities, y), 'unknown': None}
    if judgement is not None:
        result['unknown'] = {'threshold': 0.0, **{
            f'{name}_share': (float(np.mean(unknown.score(
                judgement, data.features[name], data.features[name] @ head.weights + head.biases)
                > 0)) if len(data.labels[name]) else None)
            for name in ('validation', 'testing')}}
    return result


def _multi_label_results(data: Bottlenecks, head: Head, labels: List[str]) -> Dict:
    """Per-label counts, test AP and F1; label co-occurrence (images having both, all splits);
    the test images whose predicted label set differs from theirs, most wrong labels first."""
    truth = data.labels['testing'].astype(bool)
    scores = head.predict(data.features['testing'])
    # Ranked by float64 logits, as `Final test mAP` is (tasks.multi_label).
    logits = head.logits(data.features['testing'].astype(np.float64))
    predicted = multilabel_metrics.predicted(scores)
    per_label = []
    for j, label in enumerate(labels):
        counts = {split: int(data.labels[split][:, j].sum()) for split in CATEGORIES}
        ap = multilabel_metrics.average_precision(truth[:, j], logits[:, j])
        f1 = multilabel_metrics.macro_f1(truth[:, j:j + 1], predicted[:, j:j + 1])
        per_label.append({'label': label, **counts, 'test_ap': _known(ap), 'test_f1': _known(f1)})
    every = np.concatenate([data.labels[split] for split in CATEGORIES]).astype(np.int64)
    wrong = np.flatnonzero((predicted != truth).any(axis=1))
    mispredicted = [{'path': data.paths['testing'][i],
                     'given': [labels[j] for j in np.flatnonzero(truth[i])],
                     'predicted': [labels[j] for j in np.flatnonzero(predicted[i])],
                     'scores': {labels[j]: round(float(scores[i, j]), 4)
                                for j in np.flatnonzero(truth[i] | predicted[i])},
                     'wrong_labels': int((truth[i] != predicted[i]).sum())} for i in wrong]
    mispredicted.sort(key=lambda m: -m['wrong_labels'])
    return {'per_label': per_label, 'co_occurrence': (every.T @ every).tolist(),
            'misclassified': mispredicted}


def _known(value: float) -> Optional[float]:
    """None for nan (a label no test image has): JSON has no nan."""
    return None if np.isnan(value) else value


def _given(labels: List[str], given: np.ndarray) -> Dict:
    """An image's given class ({'label': name}) or, with label rows, its set ({'labels': [...]})."""
    if given.ndim:
        return {'labels': [labels[j] for j in np.flatnonzero(given)]}
    return {'label': labels[given]}


def _label_issue(found: findings.Findings, labels: List[str],
                 issue: Union[findings.LabelIssue, findings.MissingOrWrongLabel]) -> Dict:
    if isinstance(issue, findings.MissingOrWrongLabel):
        return {'path': found.paths[issue.index], 'label': labels[issue.label],
                'given': issue.given, 'probability': round(issue.probability, 4),
                'split': found.splits[issue.index]}
    return {'path': found.paths[issue.index], 'given': labels[issue.given],
            'suggested': labels[issue.suggested], 'confidence': round(issue.confidence, 4),
            'given_probability': round(issue.given_probability, 4),
            'split': found.splits[issue.index]}


def build(config: RetrainConfig, labels: List[str], data: Bottlenecks, head: Head,
          tested: Tested, found: findings.Findings, skipped: List[Skipped],
          judgement: Optional[unknown.Fitted] = None) -> Dict:
    """The report as JSON-ready data (its schema: README, "Reading the report"); its `metrics`
    are `tested` (Tested) and the last values of the training curves."""
    paths, splits = found.paths, found.splits
    duplicates = found.duplicates
    curves = read_curves(config.summaries_dir)
    multi_label = found.labels.ndim == 2
    results = (_multi_label_results(data, head, labels) if multi_label else
               {**_test_results(data, head, labels),
                'confidence': _confidence(data, head, judgement)})
    return {
        'format': page.FORMAT,
        'kind': 'multi_label' if multi_label else 'single_label',
        'settings': dataclasses.asdict(config),
        'labels': labels,
        'splits': {split: len(data.paths[split]) for split in CATEGORIES},
        'metrics': {**tested, **{f'{run}_{tag}': values[-1][1] for run, tags in curves.items()
                                 for tag, values in tags.items()}},
        **results,
        'duplicates': [[paths[i] for i in g.members] for g in duplicates],
        'duplicate_details': [
            {'exact': g.exact, 'same_bytes': g.same_bytes, 'similarity': round(g.similarity, 4),
             'spans_splits': found.spans_splits(g), 'spans_classes': found.spans_classes(g),
             'images': [{'path': paths[i], **_given(labels, found.labels[i]),
                         'split': splits[i]} for i in g.members]}
            for g in duplicates],
        'label_issues': [_label_issue(found, labels, issue) for issue in found.label_issues],
        'skipped': [{'path': s.path, 'reason': s.reason} for s in skipped],
        'curves': curves,
    }


def report_run(config: RetrainConfig, labels: List[str], data: Bottlenecks, head: Head,
               tested: Tested, skipped: List[Skipped],
               judgement: Optional[unknown.Fitted] = None) -> Optional[Dict]:
    """Logs the findings; with config.report_dir, returns the report for the page (written with
    the run's other outputs, all or nothing: page.write)."""
    started = time.monotonic()
    found = findings.find(data, len(labels))
    _log(found)
    if not config.report_dir:
        logging.info('Report: took %.2f s; --report_dir DIR shows the images',
                     time.monotonic() - started)
        return None
    report = build(config, labels, data, head, tested, found, skipped, judgement)
    logging.info('Report: took %.2f s', time.monotonic() - started)
    return report
