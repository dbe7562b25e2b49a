"""--multi_label: an image may have several labels, from one of the layouts of
retrain.data.multilabel_lists (class folders, label files, a table; class folders inside
split folders).

A sigmoid per label (retrain.train.heads.SigmoidHead); the exported graph keeps every entry point
and `final_result` gives the sigmoids. Tested by the share of (image, label) pairs right
(`Final test accuracy`), mAP, macro F1 and exact match. Its run report (retrain.report) has
per-label counts, AP and F1, label co-occurrence, the test images predicted another label set,
duplicates, split leaks and (image, label) pairs whose label looks wrong.
"""
import os
from typing import List

import numpy as np
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.data import multilabel_lists
from retrain.data.examples import Example
from retrain.data.image_lists import CATEGORIES
from retrain.report import run_report
from retrain.tasks.base import Gathered, Task
from retrain.train import multilabel_metrics
from retrain.train.heads import Head, SigmoidHead


class MultiLabel(Task):
    """A set of labels per image."""
    head_type = SigmoidHead
    untrained_stops = False

    def gather(self) -> Gathered:
        config = self.config
        found = multilabel_lists.gather(config.image_dir, config.testing_percentage,
                                        config.validation_percentage, config.image_labels_dir,
                                        config.image_labels_file, config.split_folders)
        logging.info('Found %d labels in %s: %d training, %d validation, %d testing images',
                     len(found.labels), config.image_dir,
                     *(len(found.images[category]) for category in CATEGORIES))
        index = {label: i for i, label in enumerate(found.labels)}
        examples = []
        for split in CATEGORIES:  # Cache order: split by split, folder by folder.
            for image in sorted(found.images[split], key=lambda image: image.folder):
                row = np.zeros(len(found.labels), np.float32)
                row[[index[label] for label in image.labels]] = 1.0
                examples.append(Example(os.path.join(image.folder, image.relative), split, row))
        return Gathered(found.labels, examples)

    def tuned(self, data: Bottlenecks, head: Head, labels: List[str]) -> Head:
        """With --label_thresholds, each label's threshold chosen on the validation images
        (multilabel_metrics.best_cuts), built into the layer's biases."""
        if not self.config.label_thresholds:
            return head
        truth = data.labels['validation']
        if not len(truth):
            logging.warning('No validation images: --label_thresholds keeps 0.5 for every label')
            return head
        cuts = multilabel_metrics.best_cuts(truth, head.logits(
            data.features['validation'].astype(np.float64)))
        logging.info('Label thresholds chosen on %d validation images: %s', len(truth),
                     ', '.join(f'{label} {1 / (1 + np.exp(-cut)):.3g}'
                               for label, cut in zip(labels, cuts)))
        return head.shifted(cuts)

    def measure(self, head: Head, labels: List[str], x: np.ndarray, y: np.ndarray,
                paths: List[str]) -> run_report.Tested:
        """Logs `Final test accuracy` (per label), mAP, macro F1 and exact match."""
        predictions = multilabel_metrics.predicted(head.predict(x))
        # Ranked by float64 logits: the float32 sigmoids of a confident layer tie at 0 and 1.
        logits = head.logits(x.astype(np.float64))
        tested = {'test_accuracy': multilabel_metrics.label_agreement(y, predictions),
                  'test_images': len(y),
                  'test_map': multilabel_metrics.mean_average_precision(y, logits),
                  'test_macro_f1': multilabel_metrics.macro_f1(y, predictions),
                  'test_exact_match': multilabel_metrics.exact_match(y, predictions)}
        logging.info('Final test accuracy = %.1f%% (N=%d)', tested['test_accuracy'] * 100, len(y))
        logging.info('Final test mAP = %.3f (N=%d)', tested['test_map'], len(y))
        logging.info('Final test macro F1 = %.3f (N=%d)', tested['test_macro_f1'], len(y))
        logging.info('Final test exact match = %.1f%% (N=%d)', tested['test_exact_match'] * 100,
                     len(y))
        if self.config.print_misclassified_test_images:
            logging.info('=== MISCLASSIFIED TEST IMAGES ===')
            for path, guess, truth in zip(paths, predictions, y.astype(bool)):
                if (guess != truth).any():
                    logging.info('%70s  predicted: %s  true: %s', path, _names(guess, labels),
                                 _names(truth, labels))
        return tested


def _names(chosen: np.ndarray, labels: List[str]) -> str:
    return ', '.join(label for label, on in zip(labels, chosen) if on) or '(none)'
