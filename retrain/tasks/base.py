"""What kind of run this is: the one place where single-label and multi-label runs differ.

The pipeline runs every task through the same stages; a task answers the questions in between:
where the images and their labels come from (`gather`, over a label source of retrain.data), the
layer trained on top (`head_type`, retrain.train.heads), how the model is tested and what the run
report says. A new kind of run is one module here and one entry in retrain.tasks.TASKS.
"""
import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np
from absl import logging

from retrain.cache.bottleneck_files import Bottlenecks, Skipped
from retrain.common.errors import ToolError
from retrain.common.logs import all_named
from retrain.config import RetrainConfig
from retrain.data.examples import Example
from retrain.report import run_report
from retrain.train import unknown
from retrain.train.heads import Head
from retrain.train.sampler import Sampler


@dataclasses.dataclass
class Gathered:
    """The labels in output order and every image of the run, in cache order."""
    labels: List[str]
    examples: List[Example]


class Task:
    """The questions a kind of run answers; subclasses answer them (module doc)."""
    head_type = Head
    noun, nouns = 'label', 'labels'  # What the messages call one of the run's labels, several.
    # Whether a label without training images stops the run (a class of its own, which the
    # layer would never predict) or is only warned about (a rare tag of a multi-label set).
    untrained_stops = True

    def __init__(self, config: RetrainConfig):
        self.config = config

    def gather(self) -> Gathered:
        raise NotImplementedError

    def check_learnable(self, gathered: Gathered) -> None:
        """Before any work: raises ToolError for a label none of whose images lies in the
        training split (untrained_stops), else warns. The layer could not learn it, yet would
        give it an output (the classic scripts stopped too, at the first batch that drew it)."""
        self._check_trained(gathered, np.array([e.label for e in gathered.examples
                                                if e.split == 'training']), '')

    def check_usable(self, gathered: Gathered, data: Bottlenecks, training: bool) -> None:
        """Raises ToolError when a label lost every image (all of them unreadable) or, in a run
        that trains and where that stops it, every training image."""
        counts = sum(_label_counts(data.labels[split], len(gathered.labels))
                     for split in data.labels)
        named = [self.named(gathered, int(i)) for i in np.flatnonzero(counts == 0)]
        if named:
            kinds = {kind for kind, _ in named}
            subject = (all_named(named[0][0], named[0][0] + 's', [n for _, n in named])
                       if len(kinds) == 1 else  # Folders, and labels of several folders.
                       ', '.join(f'{kind} {name}' for kind, name in named) + ' have')
            raise ToolError(f'{subject} no readable images')
        if training and self.untrained_stops:  # Else check_learnable warned.
            self._check_trained(gathered, data.labels['training'], 'readable ')

    def _check_trained(self, gathered: Gathered, labels: np.ndarray, readable: str) -> None:
        counts = (_label_counts(labels, len(gathered.labels)) if len(labels)
                  else np.zeros(len(gathered.labels), np.int64))
        empty = np.flatnonzero(counts == 0)
        names = [repr(gathered.labels[i]) for i in empty]
        it = 'it' if len(empty) == 1 else 'them'
        if len(empty) and self.untrained_stops:
            raise ToolError(f'{all_named(self.noun, self.nouns, names)} no {readable}images in the '
                            f'training split: a layer cannot learn {it}; add images to {it} or '
                            f'remove {it}')
        if len(empty):
            logging.warning('%s %s on no training image: the layer learns to say no to %s',
                            'Label' if len(empty) == 1 else 'Labels', ', '.join(names), it)

    def named(self, gathered: Gathered, index: int) -> Tuple[str, str]:
        """A label as an error names it: (what it is, its name quoted)."""
        return 'label', repr(gathered.labels[index])

    def tuned(self, data: Bottlenecks, head: Head, labels: List[str]) -> Head:
        """The trained layer as the run exports it, adjusted on the validation images where the
        task does that (--calibrate's temperature, --label_thresholds' cuts)."""
        return head

    def test(self, data: Bottlenecks, head: Head, labels: List[str]) -> run_report.Tested:
        """Logs `Final test accuracy` and the task's other measures on the test images (all, or
        --test_batch_size drawn as training draws); returns what the lines say, for the report
        to say the same."""
        tested = _test_split(data, len(labels), self.config.test_batch_size,
                             self.config.random_seed)
        return run_report.UNTESTED if tested is None else self.measure(head, labels, *tested)

    def measure(self, head: Head, labels: List[str], x: np.ndarray, y: np.ndarray,
                paths: List[str]) -> run_report.Tested:
        """test() on the chosen test images: bottlenecks `x`, labels `y`, image `paths`."""
        raise NotImplementedError

    def confusion(self, data: Bottlenecks, head: Head) -> Tuple[np.ndarray, np.ndarray]:
        """(true, predicted) class of each test image, for TensorBoard's confusion matrix; empty
        where classes do not apply."""
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def judgement(self, data: Bottlenecks, head: Head) -> Optional[unknown.Fitted]:
        """What the exported model needs to call an image unknown (retrain.train.unknown); None
        where the task has no such judgement."""
        return None

    def report(self, gathered: Gathered, data: Bottlenecks, head: Head,
               tested: run_report.Tested, skipped: List[Skipped],
               judgement: Optional[unknown.Fitted] = None) -> Optional[Dict]:
        """The run report's data for --report_dir (None without it), its findings logged (unless
        --noreport); retrain.report tells the kinds of run apart by their labels."""
        if not (self.config.report or self.config.report_dir):
            return None
        return run_report.report_run(self.config, gathered.labels, data, head, tested, skipped,
                                     judgement)


def _label_counts(labels: np.ndarray, num_labels: int) -> np.ndarray:
    if labels.ndim == 1:
        return np.bincount(labels, minlength=num_labels)
    return labels.sum(axis=0).astype(np.int64)


def _test_split(data: Bottlenecks, num_labels: int, batch_size: int,
                random_seed: Optional[int]) -> Optional[Tuple[np.ndarray, np.ndarray, List[str]]]:
    """(bottlenecks, labels, paths) of the test images, all of them or, for a batch size of 0 or
    more, a batch drawn as training draws; None, with a warning, when there are none."""
    x, y, paths = data.features['testing'], data.labels['testing'], data.paths['testing']
    if not len(y):
        logging.warning('No test images: Final test accuracy is not available')
        return None
    if batch_size >= 0:
        chosen = Sampler(y, num_labels, np.random.default_rng(random_seed)).sample(batch_size)
        x, y, paths = x[chosen], y[chosen], [paths[i] for i in chosen]
    return x, y, paths
