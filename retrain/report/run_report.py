"""The run report: what the data and the model look like, in the log of every run and, with
--report_dir, as a page (index.html) and a file for scripts (report.json).

The findings (retrain.report.findings) come from what the run already holds; this module logs them,
gathers the rest of the picture (per-class accuracy, confusion matrix, misclassified test images,
training curves, skipped files) and hands it to retrain.report.page to write.
"""
import dataclasses
import os
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks, Skipped
from retrain.config import RetrainConfig
from retrain.data.image_lists import CATEGORIES
from retrain.report import findings, page
from retrain.train.heads import Head


def _log(findings: findings.Findings) -> None:
    """The lines every run prints (unless --noreport)."""
    groups = findings.duplicates
    exact = sum(g.exact for g in groups)
    logging.info('Report: %d duplicate group(s) (%d exact, %d near) among %d images', len(groups),
                 exact, len(groups) - exact, len(findings.paths))
    if findings.approximate:
        logging.info('Report: more than %d images: near-duplicates were searched in buckets of '
                     'similar images (a few may be missed)', findings.EXACT_SEARCH_LIMIT)
    leaks = sum(findings.spans_splits(g) for g in groups)
    if leaks:
        logging.warning('Report: %d duplicate group(s) span training and validation/testing: test '
                        'accuracy is inflated by these', leaks)
    conflicts = sum(findings.spans_classes(g) for g in groups)
    if conflicts:
        logging.warning('Report: %d duplicate group(s) span different classes: conflicting labels',
                        conflicts)
    logging.info('Report: %d suspected label error(s): a cross-validated head confidently puts '
                 'them in another class', len(findings.label_issues))


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


def build(config: RetrainConfig, labels: List[str], data: Bottlenecks, head: Head,
          accuracy: float, findings: findings.Findings, skipped: List[Skipped]) -> Dict:
    """The report as JSON-ready data (its schema: README, "Reading the report")."""
    paths, splits = findings.paths, findings.splits
    duplicates = findings.duplicates
    curves = read_curves(config.summaries_dir)
    return {
        'format': page.FORMAT,
        'settings': dataclasses.asdict(config),
        'labels': labels,
        'splits': {split: len(data.paths[split]) for split in CATEGORIES},
        'metrics': {'test_accuracy': None if np.isnan(accuracy) else accuracy,
                    'test_images': len(data.paths['testing']),
                    **{f'{run}_{tag}': values[-1][1] for run, tags in curves.items()
                       for tag, values in tags.items()}},
        **_test_results(data, head, labels),
        'duplicates': [[paths[i] for i in g.members] for g in duplicates],
        'duplicate_details': [
            {'exact': g.exact, 'similarity': round(g.similarity, 4),
             'spans_splits': findings.spans_splits(g), 'spans_classes': findings.spans_classes(g),
             'images': [{'path': paths[i], 'label': labels[findings.labels[i]],
                         'split': splits[i]} for i in g.members]}
            for g in duplicates],
        'label_issues': [{'path': paths[issue.index], 'given': labels[issue.given],
                          'suggested': labels[issue.suggested],
                          'confidence': round(issue.confidence, 4),
                          'given_probability': round(issue.given_probability, 4),
                          'split': splits[issue.index]}
                         for issue in findings.label_issues],
        'skipped': [{'path': s.path, 'reason': s.reason} for s in skipped],
        'curves': curves,
    }


def report_run(config: RetrainConfig, labels: List[str], data: Bottlenecks, head: Head,
               accuracy: float, skipped: List[Skipped]) -> Optional[Dict]:
    """Logs the findings; with config.report_dir, returns the report for the page (written with
    the run's other outputs, all or nothing: page.write)."""
    started = time.monotonic()
    found = findings.find(data, len(labels))
    _log(found)
    if not config.report_dir:
        logging.info('Report: took %.2f s; --report_dir DIR shows the images',
                     time.monotonic() - started)
        return None
    report = build(config, labels, data, head, accuracy, found, skipped)
    logging.info('Report: took %.2f s', time.monotonic() - started)
    return report
