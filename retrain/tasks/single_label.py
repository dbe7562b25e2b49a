"""The classic run: each image has one class, from its folder (each sub-folder of the image folder
is a class), from a table (--image_labels_file) or from the class folders of the user's split
(--split_folders).

A softmax over the classes (docs/COMPATIBILITY.md section 6); tested by `Final test accuracy`; the
run report (retrain.report) looks for duplicates, split leaks and suspected label errors.
"""
import os
from typing import List, Optional, Tuple

import numpy as np
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.data import image_lists, single_label_table, split_folders
from retrain.data.examples import Example
from retrain.data.image_lists import CATEGORIES, ImageClass
from retrain.report import run_report
from retrain.tasks.base import Gathered, Task
from retrain.train import calibration, loop, unknown
from retrain.train.heads import Head


def examples_of(classes: List[ImageClass]) -> List[Example]:
    """The images of the class folders, split by split, then class by class (cache order)."""
    return [Example(os.path.join(c.dir_name, relative), split, index)
            for split in CATEGORIES for index, c in enumerate(classes)
            for relative in c.images(split)]


class SingleLabel(Task):
    """A class per image, from its folder."""
    _temperature = 1.0  # --calibrate's, once tuned() has fitted one.
    noun, nouns = 'class', 'classes'

    def gather(self) -> Gathered:
        config = self.config
        classes = self._classes()
        logging.info('Found %d classes in %s: %d training, %d validation, %d testing images',
                     len(classes), config.image_dir, *image_lists.split_counts(classes))
        self._folders = [c.dir_name for c in classes]
        for label in (c.label for c in classes if c.label.strip().casefold() == 'unknown'):
            logging.warning('A class is called %r: label_image also says "unknown (best guess = '
                            '...)" for images unlike the training ones; that line is told apart '
                            'by its parenthesis, and --json by its "unknown" field', label)
        return Gathered([c.label for c in classes], examples_of(classes))

    def _classes(self) -> List[ImageClass]:
        """From the label source the flags choose: split folders, a table or class folders."""
        config = self.config
        if config.split_folders:
            return split_folders.image_classes(config.image_dir)
        if config.image_labels_file:
            return single_label_table.image_classes(config.image_dir, config.image_labels_file,
                                                    config.testing_percentage,
                                                    config.validation_percentage)
        return image_lists.create_image_lists(config.image_dir, config.testing_percentage,
                                              config.validation_percentage)

    def named(self, gathered: Gathered, index: int) -> Tuple[str, str]:
        if not self._folders[index]:  # Its images lie in several folders.
            return super().named(gathered, index)
        return 'class folder', repr(self._folders[index])

    def measure(self, head: Head, labels: List[str], x: np.ndarray, y: np.ndarray,
                paths: List[str]) -> run_report.Tested:
        predictions = head.predict(x).argmax(axis=1)
        accuracy = float(np.mean(predictions == y))
        logging.info('Final test accuracy = %.1f%% (N=%d)', accuracy * 100, len(y))
        if self.config.print_misclassified_test_images:
            logging.info('=== MISCLASSIFIED TEST IMAGES ===')
            for path, predicted, truth in zip(paths, predictions, y):
                if predicted != truth:
                    logging.info('%70s  %s', path, labels[predicted])
        return {'test_accuracy': accuracy, 'test_images': len(y)}

    def confusion(self, data: Bottlenecks, head: Head) -> Tuple[np.ndarray, np.ndarray]:
        return data.labels['testing'], head.predict(data.features['testing']).argmax(axis=1)

    def tuned(self, data: Bottlenecks, head: Head, labels: List[str]) -> Head:
        """With --calibrate, the layer giving logits / T, T fitted on the validation images
        (retrain.train.calibration); their calibration error is logged before and after."""
        x, y = data.features['validation'], data.labels['validation']
        if not self.config.calibrate:
            return head
        if not len(y):
            logging.warning('--calibrate: no validation images, so no temperature is fitted')
            return head
        logits = x @ head.weights + head.biases
        temperature = calibration.fit_temperature(logits, y)
        if temperature is None:
            right = int((logits.argmax(1) == y).sum())
            logging.warning('--calibrate: the %d validation images do not determine a '
                            'temperature (%s), so none is fitted and the scores stay as '
                            'trained', len(y), f'all {right} are classified right'
                            if right == len(y) else 'the best one lies outside 0.02 to 55')
            return head
        self._temperature = temperature
        tuned = calibration.calibrated(head, temperature)
        logging.info('Calibrated: temperature %.3f; validation expected calibration error '
                     '%.3f before, %.3f after (N=%d)', temperature,
                     calibration.expected_calibration_error(head.predict(x), y),
                     calibration.expected_calibration_error(tuned.predict(x), y), len(y))
        return tuned

    def judgement(self, data: Bottlenecks, head: Head) -> Optional[unknown.Fitted]:
        """Fitted on the cached bottlenecks, so not after --fine_tune_steps (the module that
        computed them has changed since); the layers trained without held-out images train on
        them too, even in a run whose layer trained on distorted images."""
        if self.config.fine_tune_steps:
            logging.info('Fine-tuned: the exported model carries no unknown judgement')
            return None
        validation, training = len(data.labels['validation']), len(data.labels['training'])
        held_out = unknown.held_out_count(validation, training)
        if held_out:  # It takes as long as training did, times the folds: say why.
            logging.info('Unknown judgement: %d validation images are too few to set its '
                         'operating point alone; training the layer %d more times without %d '
                         'held-out training images', validation,
                         unknown.held_out_folds(held_out, training, validation), held_out)
        try:
            fitted = unknown.fit(data.features['training'], data.labels['training'],
                                 head.weights, head.biases, data.features['validation'],
                                 data.labels['validation'],
                                 loop.layer_trainer(head.weights.shape[1], self.config,
                                                    self._temperature))
        except unknown.NoSpread:
            logging.warning('Unknown judgement: the training images of each class give one '
                            'bottleneck (copies of one image?), so nothing tells an unusual '
                            'image apart; the exported model carries no unknown judgement')
            return None
        logging.info('Unknown judgement fitted: %.0f%% of the %s images score above 0 '
                     '(the default operating point)', unknown.VALIDATION_FLAGGED * 100,
                     f'{validation} validation and {held_out} held-out training' if held_out
                     else 'validation' if validation else 'training')
        return fitted

