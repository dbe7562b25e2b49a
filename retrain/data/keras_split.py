"""make_image_classifier's split of class folders: the validation images are the ones it chose
for the same folder, so its users keep their validation set.

Both of its readers listed the classes as the sorted folder names (labels unchanged, not
lowercased as retrain's are: its labels file held the folder names) and each class's images
recursively, folders in sorted path order and names sorted within each. Then
- tf.data (`image_dataset_from_directory`, its default on TensorFlow >= 2.5): its validation
  subset was read with shuffle=False, so the last k = int(s * n) images of the listing, class
  after class, are validation; its training subset was read shuffled by numpy's RandomState(123)
  (`seed=123`) and took the first n - k of the shuffled list. The two overlap (about s of the
  validation images are trained on, as many others are never used) and the last classes are
  over-represented in validation; both are kept, so a run trains on the same images and its
  --assert_accuracy_at_least thresholds keep their meaning.
- ImageDataGenerator (`--nouse_tf_data_input`): in each class, the first int(s * n) are
  validation.
Each reader took its own extensions; images of other types are left out as it left them out.
Those it took that TensorFlow cannot decode (ImageDataGenerator's PIL read TIFF and PPM) are
listed and split as it did, then skipped as unreadable, each named with the reason.
A class folder without images of those types stayed a class (a line of the labels file, an
output of the model that no image was trained towards), so clients that index its outputs by
position keep working; it is kept so, with a warning. A folder name that cannot be a line of the
labels file (a line break, not UTF-8) is refused before any work.
"""
import os
from typing import List, Tuple

import numpy as np
from absl import logging

from retrain.common.errors import ToolError
from retrain.data import image_lists
from retrain.data.examples import Example

TF_DATA_SEED = 123
TF_DATA_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png')
IMAGE_DATA_GENERATOR_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff')


def _keras_order(relative: str, class_dir: str) -> Tuple[str, str]:
    """Keras' sort: by the walked folder's full path, then by file name within it."""
    return os.path.join(class_dir, os.path.dirname(relative)), os.path.basename(relative)


def _check_label(class_dir: str) -> None:
    """Raises ToolError unless the folder's name can be a line of the labels file (UTF-8)."""
    name = os.path.basename(class_dir)
    if name.splitlines() != [name]:  # Any line break a reader of the file may split on.
        raise ToolError(f'class folder {class_dir!r}: its name holds a line break, so it '
                        'cannot be a line of the labels file; rename it')
    try:
        name.encode('utf-8')
    except UnicodeEncodeError:
        raise ToolError(f'class folder {class_dir!r}: its name is not UTF-8 text, so it cannot '
                        'be written to the labels file; rename it') from None


def split_examples(image_dir: str, validation_split: float,
                   tf_data: bool = True) -> Tuple[List[str], List[Example]]:
    """(labels, examples in cache order: training, then validation) as the chosen reader split
    them."""
    extensions = TF_DATA_EXTENSIONS if tf_data else IMAGE_DATA_GENERATOR_EXTENSIONS
    folders = sorted(image_lists.class_folders(image_dir, label_of=str, keep_empty=True,
                                               extensions=[e.lstrip('.') for e in extensions]),
                     key=lambda f: f.dir_name)
    for folder in folders:
        _check_label(os.path.join(image_dir, folder.dir_name))
    listed = []  # (location, class index, position in its class, images of its class)
    for index, folder in enumerate(folders):
        class_dir = os.path.join(image_dir, folder.dir_name)
        files = sorted((name for name in folder.files if name.lower().endswith(extensions)),
                       key=lambda name: _keras_order(name, class_dir))
        if not files:
            logging.warning('%s holds no %s images: kept as a class without images, as '
                            'make_image_classifier kept it', class_dir,
                            '/'.join(e.lstrip('.') for e in extensions))
        listed += [(os.path.join(folder.dir_name, name), index, position, len(files))
                   for position, name in enumerate(files)]
    with_images = {index for _, index, _, _ in listed}
    image_lists.check_classes(image_dir, [f for i, f in enumerate(folders) if i in with_images])
    if tf_data:
        held_out = int(validation_split * len(listed))
        shuffled = list(range(len(listed)))
        np.random.RandomState(TF_DATA_SEED).shuffle(shuffled)
        training = shuffled[:len(listed) - held_out]
        validation = range(len(listed) - held_out, len(listed))
    else:
        validation = [i for i, (_, _, position, count) in enumerate(listed)
                      if position < int(validation_split * count)]
        training = sorted(set(range(len(listed))) - set(validation))
    return ([f.dir_name for f in folders],
            [Example(listed[i][0], split, listed[i][1])
             for split, chosen in (('training', training), ('validation', validation))
             for i in chosen])
