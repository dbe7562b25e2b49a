"""make_image_classifier's split of class folders: the validation images are the ones it chose
for the same folder, so its users keep their validation set.

Both of its readers listed the classes as the sorted folder names (labels unchanged, not
lowercased as retrain's are: its labels file held the folder names) and each class's images
recursively, folders in sorted path order and names sorted within each. Then
- tf.data (`image_dataset_from_directory`, its default on TensorFlow >= 2.5): its validation
  subset was read with shuffle=False, so the last int(s * n) images of the listing, class after
  class, are validation. (Its training subset was read shuffled, with seed 123, and took the
  first n - int(s * n) of the shuffled list: about s of its validation images were trained on,
  and as many others never used. Here training is every image not in validation.)
- ImageDataGenerator (`--nouse_tf_data_input`): in each class, the first int(s * n) are
  validation.
Each reader took its own extensions; images of other types are left out as it left them out.
"""
import os
from typing import List, Tuple

from retrain.data import image_lists
from retrain.data.examples import Example

TF_DATA_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.png')
IMAGE_DATA_GENERATOR_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff')


def _keras_order(relative: str, class_dir: str) -> Tuple[str, str]:
    """Keras' sort: by the walked folder's full path, then by file name within it."""
    return os.path.join(class_dir, os.path.dirname(relative)), os.path.basename(relative)


def split_examples(image_dir: str, validation_split: float,
                   tf_data: bool = True) -> Tuple[List[str], List[Example]]:
    """(labels, examples in cache order: training, then validation) as the chosen reader split
    them."""
    folders = sorted(image_lists.class_folders(image_dir), key=lambda f: f.dir_name)
    image_lists.check_classes(image_dir, folders)
    extensions = TF_DATA_EXTENSIONS if tf_data else IMAGE_DATA_GENERATOR_EXTENSIONS
    listed = []  # (location, class index, position in its class, images of its class)
    for index, folder in enumerate(folders):
        class_dir = os.path.join(image_dir, folder.dir_name)
        files = sorted((name for name in folder.files if name.lower().endswith(extensions)),
                       key=lambda name: _keras_order(name, class_dir))
        listed += [(os.path.join(folder.dir_name, name), index, position, len(files))
                   for position, name in enumerate(files)]
    if tf_data:
        held_out = int(validation_split * len(listed))
        validation = set(range(len(listed) - held_out, len(listed)))
    else:
        validation = {i for i, (_, _, position, count) in enumerate(listed)
                      if position < int(validation_split * count)}
    examples = [Example(location, 'validation' if i in validation else 'training', index)
                for i, (location, index, _, _) in enumerate(listed)]
    return ([f.dir_name for f in folders],
            [e for e in examples if e.split == 'training']
            + [e for e in examples if e.split == 'validation'])
