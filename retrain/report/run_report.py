"""The run report: what the data and the model look like, in the log of every run and, with
--report_dir, as a page (index.html) and a file for scripts (report.json).

The findings (report_findings) come from what the run already holds; this module logs them,
gathers the rest of the picture (per-class accuracy, confusion matrix, misclassified test images,
training curves, skipped files) and hands it to report_page to write.
"""
import dataclasses
import json
import os
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from retrain.data import image_io, image_lists
from retrain.report import findings, page
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common.logs import readable
from retrain.config import ConfigError, RetrainConfig
from retrain.data.image_lists import CATEGORIES, ImageClass
from retrain.train.training import Head

FORMAT = 'retrain-report/1'


def check_report_dir(report_dir: str) -> None:
    """Refuses, before any work, a --report_dir that this tool must not replace: a file, or a
    folder holding anything but an earlier report. The flag names the wrong place, whatever the
    run: a usage error (exit code 2), like other settings no run can use."""
    if not report_dir:
        return
    try:
        report_dir.encode('utf-8')
    except UnicodeEncodeError:  # Bytes that are not UTF-8: TensorFlow's file functions refuse them.
        raise ConfigError(f'--report_dir {readable(report_dir)} is not a UTF-8 name, which '
                          'TensorFlow cannot write to; choose another') from None
    if not tf.io.gfile.exists(report_dir):
        return
    if not tf.io.gfile.isdir(report_dir):
        raise ConfigError(f'--report_dir {report_dir} is a file, not a folder')
    entries = set(tf.io.gfile.listdir(report_dir))
    if entries and not (entries <= set(page.FILES) and _is_report(report_dir)):
        raise ConfigError(f'--report_dir {report_dir} holds other files than a report; '
                          'choose a new or empty folder')


def _is_report(report_dir: str) -> bool:
    try:
        with tf.io.gfile.GFile(os.path.join(report_dir, page.JSON), 'r') as f:
            return json.load(f).get('format') == FORMAT
    except (tf.errors.OpError, ValueError, AttributeError):
        return False


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


def _skipped(image_dir: str, classes: List[ImageClass], allow_truncated: bool) -> List[Dict]:
    """The image files of the class folders that the run could not use, and why."""
    skipped = []
    for image_class in classes:
        used = {rel for c in CATEGORIES for rel in image_class.images(c)}
        folder = os.path.join(image_dir, image_class.dir_name)
        for rel in image_lists.find_class_files(folder):
            if rel not in used:
                path = os.path.join(folder, rel)
                reason = image_io.describe_decode_error(path, allow_truncated=allow_truncated)
                skipped.append({'path': path, 'reason': reason or 'could not be decoded'})
    return skipped


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


def build(config: RetrainConfig, classes: List[ImageClass], data: Bottlenecks, head: Head,
          accuracy: float, findings: findings.Findings) -> Dict:
    """The report as JSON-ready data (its schema: README, "Reading the report")."""
    labels = [c.label for c in classes]
    paths, splits = findings.paths, findings.splits
    duplicates = findings.duplicates
    curves = read_curves(config.summaries_dir)
    return {
        'format': FORMAT,
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
        'skipped': _skipped(config.image_dir, classes, config.allow_truncated_images),
        'curves': curves,
    }


def report_run(config: RetrainConfig, classes: List[ImageClass], data: Bottlenecks, head: Head,
               accuracy: float) -> Optional[Dict]:
    """Logs the findings; with config.report_dir, returns the report for the page (written with
    the run's other outputs, all or nothing: page.write)."""
    started = time.monotonic()
    found = findings.find(data, len(classes))
    _log(found)
    if not config.report_dir:
        logging.info('Report: took %.2f s; --report_dir DIR shows the images',
                     time.monotonic() - started)
        return None
    report = build(config, classes, data, head, accuracy, found)
    logging.info('Report: took %.2f s', time.monotonic() - started)
    return report
