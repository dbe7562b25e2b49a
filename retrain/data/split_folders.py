"""--split_folders: the user's own split. image_dir holds `train/`, `validation/` (or `val/`) and,
optionally, `test/`, each with class folders; every image lies in the split of its folder, with
no hashing, so a published split (or one kept apart on purpose) is trained and tested exactly.

A class is learnt from train/: class folders of validation/ or test/ that train/ lacks are an
error naming them all (no training image, so no output for them); a class of train/ that
validation/ or test/ lacks is named in an info line (the accuracy measured there says nothing
about it). Classes are matched by label (retrain.data.image_lists.label_for_dir). Each image is
cached at its path below image_dir (`train/daisy/x.jpg`), so the three splits never share a
cache file.
"""
import os
from typing import Dict, Iterable, List

from absl import logging

from retrain.common.errors import ToolError
from retrain.common.logs import all_named
from retrain.data import image_files, image_lists
from retrain.data.image_lists import CATEGORIES, ImageClass

# The folder names that may hold each split, in the order they are looked for.
FOLDERS = {'training': ('train',), 'validation': ('validation', 'val'), 'testing': ('test',)}
_REQUIRED = ('training', 'validation')


def find(image_dir: str) -> Dict[str, str]:
    """{split: name of its folder in image_dir}; testing only where test/ exists. Raises ToolError
    when train/ or validation/ is missing or both validation/ and val/ exist; warnings name
    other folders and images outside class folders, which are not read."""
    if not image_dir or not image_files.isdir(image_dir):
        raise ToolError(f'image directory not found: {image_dir!r}')
    present = [name for name in image_files.listdir(image_dir)
               if not image_files.is_hidden(name)
               and image_files.isdir(os.path.join(image_dir, name))]
    found = {}
    for split, names in FOLDERS.items():
        there = [name for name in names if name in present]
        if len(there) > 1:
            raise ToolError(f'--split_folders: {image_dir!r} holds both {there[0]}/ and '
                            f'{there[1]}/; keep one validation folder')
        if there:
            found[split] = there[0]
        elif split in _REQUIRED:
            raise ToolError(f'--split_folders: {image_dir!r} holds no {" or ".join(names)}/ '
                            f'folder (it holds: {", ".join(present) or "no folders"})')
    others = sorted(set(present) - set(found.values()))
    if others:
        logging.warning('--split_folders: %s is not train/, validation/, val/ or test/: not read',
                        ', '.join(os.path.join(image_dir, name) for name in others))
    for folder in [image_dir] + [os.path.join(image_dir, name) for name in found.values()]:
        _warn_of_loose_images(folder)
    return found


def _warn_of_loose_images(folder: str) -> None:
    """A warning naming the images that lie in `folder` itself, outside any class folder: the
    run does not read them, and a user who put them there meant it to."""
    loose = [name for name in image_files.listdir(folder) if image_files.is_image_name(name)
             and not image_files.isdir(os.path.join(folder, name))]
    if loose:
        logging.warning('--split_folders: %d image(s) in %s lie outside any class folder: not '
                        'read (%s%s)', len(loose), folder, ', '.join(loose[:3]),
                        ', ...' if len(loose) > 3 else '')


def image_classes(image_dir: str) -> List[ImageClass]:
    """The classes of train/, in class-index order, each with its images of every split as paths
    relative to image_dir (dir_name ''). Raises ToolError as the module doc says."""
    folders = find(image_dir)
    per_split = {split: image_lists.class_folders(os.path.join(image_dir, folder))
                 for split, folder in folders.items()}
    training = per_split['training']
    image_lists.check_classes(os.path.join(image_dir, folders['training']), training)
    check_labels(folders, {split: [folder.label for folder in class_folders]
                           for split, class_folders in per_split.items()})
    classes = {folder.label: ImageClass(folder.label, '') for folder in training}
    for split, class_folders in per_split.items():
        top = folders[split]
        for folder in class_folders:
            if split == 'training':
                image_lists.warn_about_size(os.path.join(image_dir, top, folder.dir_name),
                                            len(folder.files))
            classes[folder.label].images(split).extend(
                os.path.join(top, folder.dir_name, relative) for relative in folder.files)
    return list(classes.values())


def check_labels(folders: Dict[str, str], labels: Dict[str, Iterable[str]]) -> None:
    """Given the labels that the images of each split have: raises ToolError naming those train/
    lacks, and names in an info line those of train/ that validation/ or test/ lack (module
    doc). Single-label and multi-label runs alike."""
    training = list(dict.fromkeys(labels['training']))
    untrained = {split: set(found) - set(training) for split, found in labels.items()}
    named = sorted(set().union(*untrained.values()))
    if named:  # All of them: a user fixing one at a time would run again for each.
        where = ' or '.join(f'{folders[split]}/' for split, found in untrained.items() if found)
        subject = all_named('class', 'classes', [repr(name) for name in named])
        raise ToolError(f'--split_folders: {subject} images in {where} but none in '
                        f'{folders["training"]}/: a class with no training images cannot be '
                        f'learnt; add some or remove {"it" if len(named) == 1 else "them"}')
    for split in CATEGORIES[1:]:
        missing = [label for label in training if label not in set(labels.get(split, ()))]
        if split in folders and missing:
            logging.info('--split_folders: no %s images in %s/ for %s', split, folders[split],
                         ', '.join(missing))
