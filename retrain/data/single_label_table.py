"""Single-label images listed in a table (--image_labels_file without --multi_label): a flat
folder plus `path,label` rows, as many data sets ship (Kaggle's train.csv).

The table is read as for --multi_label (retrain.data.label_table). Each image has one label: a
row giving two (`a;b`), or rows giving one image different labels, are refused naming the line,
with a pointer to --multi_label. Labels are kept as written (only surrounding spaces dropped):
unlike folder names, they are chosen as labels. Classes are the labels in sorted order, as class
folders are. The split is the classic stable hash (image_lists.which_set) of the image's path
relative to image_dir with `/`, so it does not depend on where the folder lies and adding
images never moves another.
"""
from typing import List, Set

from retrain.common.errors import ConfigError, ToolError
from retrain.data import image_lists, label_table
from retrain.data.image_lists import ImageClass

ROW_FORM = 'path,label'


def one_label(table: str, key: str, rows: label_table.Rows) -> Set[str]:
    """The one label the rows of an image give it; ConfigError where they give more."""
    for line, labels in rows:
        if len(labels) > 1:
            raise ConfigError(f'{table} line {line}: {len(labels)} labels for one image '
                              f'({";".join(sorted(labels))}); give --multi_label to train '
                              'several labels per image')
    given = set().union(*(labels for _, labels in rows))
    if len(given) > 1:
        raise ConfigError(f'{table} gives {key} different labels on lines '
                          f'{", ".join(str(line) for line, _ in rows)}; give one label per '
                          'image, or --multi_label to train several')
    return given


def image_classes(image_dir: str, table: str, testing_percentage: float,
                  validation_percentage: float) -> List[ImageClass]:
    """The classes the table names, in class-index order, each with its images of every split
    as paths relative to image_dir (dir_name ''). Raises ToolError for fewer than two."""
    images = label_table.labelled_images(image_dir, table, ROW_FORM, one_label)
    classes = {label: ImageClass(label, '')
               for label in sorted({label for _, _, labels in images for label in labels})}
    if len(classes) < 2:
        raise ToolError(f'{len(classes)} label(s) found in {table} for the images of '
                        f'{image_dir!r}; classification needs at least two')
    for location, key, (label,) in images:
        classes[label].images(image_lists.which_set(key, validation_percentage,
                                                    testing_percentage)).append(location)
    return list(classes.values())
