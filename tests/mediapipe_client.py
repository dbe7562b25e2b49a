"""MediaPipe's ImageClassifier (the engine of its Android, iOS and web libraries) on a .tflite file.

It reads the input's normalization and the labels from the file's metadata alone, so a file it
classifies correctly carries the metadata that on-device apps need. Tests using it skip cleanly
where mediapipe is not installed.
"""
from typing import List, Sequence, Tuple

import numpy as np
import pytest


def classify(path: str, images: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[str]]:
    """(scores [N, classes] in class-index order, the category name of each index)."""
    mp = pytest.importorskip('mediapipe')
    vision = pytest.importorskip('mediapipe.tasks.python.vision')
    from mediapipe.tasks.python.core.base_options import BaseOptions
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=path))
    scores, names = [], {}
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for pixels in images:
            image = mp.Image(image_format=mp.ImageFormat.SRGB,
                             data=np.ascontiguousarray(pixels, np.uint8))
            categories = classifier.classify(image).classifications[0].categories
            row = np.zeros(len(categories), np.float32)
            for category in categories:
                row[category.index] = category.score
                names[category.index] = category.category_name
            scores.append(row)
    return np.array(scores), [names[i] for i in range(len(names))]


def noisy_images(colours: Sequence[Sequence[int]], per_colour: int, size: int,
                 seed: int = 0) -> np.ndarray:
    """uint8 [N, size, size, 3]: `per_colour` noisy images of each colour, in that order. At the
    model's own input size, so MediaPipe's resizing leaves the pixels as they are."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.clip(rng.normal(colour, 30, (per_colour, size, size, 3)), 0, 255)
                           for colour in colours]).astype(np.uint8)
