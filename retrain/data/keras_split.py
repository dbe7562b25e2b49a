"""make_image_classifier's split of class folders: the validation images are the ones its Keras
ImageDataGenerator(validation_split=s) chose, so a folder gives the same validation set here.

Keras listed each class folder's images (recursively: folders in sorted order, names sorted
within each folder) and took the first int(s * n) of them as the validation subset, the rest as
training. Classes are the folder names in sorted order, labels unchanged (not lowercased as
retrain's are), since its labels file held the folder names.
"""
import os
from typing import List, Tuple

from retrain.data import image_lists
from retrain.data.examples import Example


def _keras_order(relative: str, class_dir: str) -> Tuple[str, str]:
    """Keras' sort: by the walked folder's full path, then by file name within it."""
    return os.path.join(class_dir, os.path.dirname(relative)), os.path.basename(relative)


def split_examples(image_dir: str, validation_split: float) -> Tuple[List[str], List[Example]]:
    """(labels, examples in cache order: training, then validation)."""
    folders = sorted(image_lists.class_folders(image_dir), key=lambda f: f.dir_name)
    image_lists.check_classes(image_dir, folders)
    chosen = {'training': [], 'validation': []}
    for index, folder in enumerate(folders):
        class_dir = os.path.join(image_dir, folder.dir_name)
        files = sorted(folder.files, key=lambda name: _keras_order(name, class_dir))
        held_out = int(validation_split * len(files))
        for position, relative in enumerate(files):
            split = 'validation' if position < held_out else 'training'
            chosen[split].append(Example(os.path.join(folder.dir_name, relative), split, index))
    return [f.dir_name for f in folders], chosen['training'] + chosen['validation']
