"""retrain.data.split_folders: the user's own train/, validation/ (val/) and test/ folders."""
import logging
import os

import pytest

from retrain.common.errors import ToolError
from retrain.data import multilabel_lists, split_folders
from retrain.data.image_lists import CATEGORIES

from multilabel_images import make_pair_folders


def _write(path) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b'x')


def _tree(root, files):
    for path in files:
        _write(os.path.join(root, *path.split('/')))
    return str(root)


def test_each_image_is_in_the_split_of_its_folder(tmp_path, caplog):
    files = ([f'train/Daisy/{i}.jpg' for i in range(25)]
             + ['train/roses/a.jpg', 'train/roses/b/c.jpg', 'val/daisy/v.jpg', 'val/roses/v.jpg',
                'test/daisy/t.jpg', 'notes/x.jpg', 'train/loose.jpg', 'train/readme.txt',
                'top.png'])
    root = _tree(tmp_path / 'images', files)
    with caplog.at_level(logging.INFO, logger='absl'):
        classes = split_folders.image_classes(root)
    assert [c.label for c in classes] == ['daisy', 'roses']
    found = sorted((c.label, split, location.replace(os.sep, '/')) for c in classes
                   for split in CATEGORIES for location in c.images(split))
    expected = sorted(({'Daisy': 'daisy'}.get(path.split('/')[1], path.split('/')[1]),
                       {'train': 'training', 'val': 'validation', 'test': 'testing'}[
                           path.split('/')[0]], path)
                      for path in files if path.count('/') > 1 and not path.startswith('notes'))
    assert found == expected
    messages = [r.getMessage() for r in caplog.records]
    assert sum('notes' in m and 'not read' in m for m in messages) == 1
    loose = [m for m in messages if 'outside any class folder' in m]
    assert loose == [f'--split_folders: 1 image(s) in {root} lie outside any class folder: not '
                     'read (top.png)',
                     f'--split_folders: 1 image(s) in {os.path.join(root, "train")} lie outside '
                     'any class folder: not read (loose.jpg)']
    assert any(m == '--split_folders: no testing images in test/ for roses' for m in messages)
    small = [m for m in messages if 'has less than 20 images' in m]
    assert small == [f'WARNING: Folder {os.path.join(root, "train", "roses")} has less than 20 '
                     'images, which may cause issues.']  # Training folders only.


@pytest.mark.parametrize('files,message', [
    (['train/a/1.jpg', 'train/b/1.jpg', 'test/a/1.jpg'], r'holds no validation or val/ folder'),
    (['val/a/1.jpg', 'val/b/1.jpg'], r'holds no train/ folder \(it holds: val\)'),
    (['train/a/1.jpg', 'train/b/1.jpg', 'val/a/1.jpg', 'validation/a/1.jpg'],
     r'holds both validation/ and val/'),
    (['train/a/1.jpg', 'train/b/1.jpg', 'val/a/1.jpg', 'test/c/1.jpg'],
     r"class 'c' has images in test/ but none in train/: a class with no training images cannot "
     r'be learnt'),
    (['train/a/1.jpg', 'val/a/1.jpg', 'val/b/1.jpg'], r'only one class folder found'),
])
def test_layouts_that_are_not_a_split_are_one_line_errors(tmp_path, files, message):
    with pytest.raises(ToolError, match=message):
        split_folders.image_classes(_tree(tmp_path / 'images', files))


def test_multi_label_class_folders_in_split_folders(tmp_path):
    root = tmp_path / 'images'
    for folder, seed in (('train', 0), ('validation', 1), ('test', 2)):
        make_pair_folders(str(root / folder), per_pair=3, seed=seed)
    found = multilabel_lists.gather(str(root), 10, 10, by_split_folders=True)
    assert found.labels == ['blue', 'green', 'red']
    for category, folder in (('training', 'train'), ('validation', 'validation'),
                             ('testing', 'test')):
        images = found.images[category]
        assert len(images) == 9  # Each image once, with the labels of both its folders.
        assert all(image.folder.split(os.sep)[0] == folder and len(image.labels) == 2
                   for image in images)


@pytest.mark.parametrize('extra, split', [('test/purple/1.jpg', 'test'),
                                          ('val/purple/1.jpg', 'val')])
def test_a_multi_label_label_train_lacks_is_refused_as_a_class_is(tmp_path, extra, split):
    root = tmp_path / 'images'
    for folder, seed in (('train', 0), ('val', 1), ('test', 2)):
        make_pair_folders(str(root / folder), per_pair=3, seed=seed)
    _write(os.path.join(root, *extra.split('/')))
    with pytest.raises(ToolError, match=rf"class 'purple' has images in {split}/ but none in "
                                        r'train/'):
        multilabel_lists.gather(str(root), 10, 10, by_split_folders=True)


def test_multi_label_split_folders_name_what_validation_lacks_and_warn_of_small_training(
        tmp_path, caplog):
    root = tmp_path / 'images'
    for folder, seed in (('train', 0), ('val', 1)):
        make_pair_folders(str(root / folder), per_pair=3, seed=seed)
    _write(os.path.join(root, 'train', 'purple', 'p.jpg'))
    with caplog.at_level(logging.INFO, logger='absl'):
        multilabel_lists.gather(str(root), 10, 10, by_split_folders=True)
    messages = [r.getMessage() for r in caplog.records]
    assert '--split_folders: no validation images in val/ for purple' in messages
    small = [m for m in messages if 'has less than 20 images' in m]
    assert small and all(os.path.join(str(root), 'train', '') in m for m in small)


def test_without_test_folder_there_are_no_test_images(tmp_path):
    root = _tree(tmp_path / 'images', ['train/a/1.jpg', 'train/b/1.jpg', 'validation/a/2.jpg'])
    assert split_folders.find(root) == {'training': 'train', 'validation': 'validation'}
    classes = split_folders.image_classes(root)
    assert [len(c.testing) for c in classes] == [0, 0]
    assert classes[0].validation == [os.path.join('validation', 'a', '2.jpg')]
