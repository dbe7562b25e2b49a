"""Multi-label image sets for the tests: two-colour photos, in the layouts the tools read."""
import os
import shutil

import numpy as np
import tensorflow as tf

COLOURS = {'red': (200, 40, 40), 'green': (40, 190, 60), 'blue': (50, 60, 210)}
PAIRS = (('red', 'green'), ('red', 'blue'), ('green', 'blue'))


def write_two_colour_image(path: str, first: str, second: str, rng: np.random.Generator) -> None:
    """A noisy image, its left half of one colour and its right half of the other."""
    halves = [rng.normal(COLOURS[colour], 25, (40, 24, 3)) for colour in (first, second)]
    pixels = np.clip(np.concatenate(halves, axis=1), 0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(tf.io.encode_jpeg(pixels, quality=90).numpy())


def make_pair_folders(root: str, per_pair: int = 12, seed: int = 0) -> str:
    """The fork's layout: each two-colour image is in the folders of both its colours."""
    rng = np.random.default_rng(seed)
    for first, second in PAIRS:
        for i in range(per_pair):
            name = f'{first}_{second}_{i:03d}.jpg'
            write_two_colour_image(os.path.join(root, first, name), first, second, rng)
            os.makedirs(os.path.join(root, second), exist_ok=True)
            shutil.copy(os.path.join(root, first, name), os.path.join(root, second, name))
    return root
