"""The data of a --multi_label run: labelled images gathered, their bottlenecks labelled.

retrain.pipeline runs it like any other: what differs is where labels come from (here and
retrain.data.multilabel_lists), the layer and sampler (retrain.train.multilabel_training) and the test
metrics. The exported graph keeps every entry point; `final_result` is a sigmoid per label.
"""
import os
from typing import List, Tuple

import numpy as np
from absl import logging

from retrain.cache import bottleneck_files
from retrain.data import image_lists, multilabel_lists
from retrain.config import RetrainConfig
from retrain.data.image_lists import CATEGORIES


def gather(config: RetrainConfig) -> Tuple[multilabel_lists.MultiLabelImages,
                                            List[image_lists.ImageClass]]:
    """The labelled images (split once per image) and the class folders that cache them."""
    found = multilabel_lists.gather(config.image_dir, config.testing_percentage,
                                    config.validation_percentage, config.image_labels_dir,
                                    config.image_labels_file)
    logging.info('Found %d labels in %s: %d training, %d validation, %d testing images',
                 len(found.labels), config.image_dir,
                 *(len(found.images[category]) for category in CATEGORIES))
    return found, found.cache_classes()


def with_label_sets(data: bottleneck_files.Bottlenecks, found: multilabel_lists.MultiLabelImages,
                    image_dir: str) -> bottleneck_files.Bottlenecks:
    """The same bottlenecks with 0/1 label rows [n, labels] in place of folder indices."""
    index = {label: i for i, label in enumerate(found.labels)}
    rows = {}
    for category in CATEGORIES:
        for image in found.images[category]:
            row = np.zeros(len(found.labels), np.float32)
            row[[index[label] for label in image.labels]] = 1.0
            rows[os.path.join(image_dir, image.folder, image.relative)] = row
    labels = {category: (np.stack([rows[path] for path in data.paths[category]])
                         if data.paths[category] else np.zeros((0, len(found.labels)), np.float32))
              for category in CATEGORIES}
    return bottleneck_files.Bottlenecks(data.features, labels, data.paths)
