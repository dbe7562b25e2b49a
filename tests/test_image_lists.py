"""Finding images, labels and the stable split (docs/COMPATIBILITY.md section 3)."""
import hashlib
import os

import pytest

from retrain.common.errors import ToolError
from retrain.data import image_lists

# (path, expected set, expected percentage) from docs/COMPATIBILITY.md section 3, at 10/10.
SPLIT_VECTORS = [
    ('flower_photos/daisy/100080576_f52e8ee070_n.jpg', 'training', 64.6538),
    ('flower_photos/daisy/10172567486_2748826a8b.jpg', 'validation', 2.6526),
    ('flower_photos/daisy/10437770546_8bb6f7bdd3_m.jpg', 'validation', 8.3394),
    ('flower_photos/daisy/10172636503_21bededa75_n.jpg', 'testing', 17.6144),
    ('flower_photos/daisy/10993818044_4c19b86c82.jpg', 'testing', 18.5020),
    ('speech/yes/0a7c2a8d_nohash_0.wav', 'training', 69.6308),
    ('speech/yes/0a7c2a8d_nohash_1.wav', 'training', 69.6308),
]


@pytest.mark.parametrize('path,expected,percentage', SPLIT_VECTORS)
def test_split_vectors(path, expected, percentage):
    assert image_lists.split_percentage(path) == pytest.approx(percentage, abs=5e-5)
    assert image_lists.which_set(path, 10, 10) == expected


def test_split_follows_percentages():
    path = 'flower_photos/daisy/10172636503_21bededa75_n.jpg'  # p = 17.61
    assert image_lists.which_set(path, 20, 10) == 'validation'
    assert image_lists.which_set(path, 10, 5) == 'training'


@pytest.mark.parametrize('name,label', [
    ('daisy', 'daisy'), ('Sun_Flowers', 'sun flowers'), ('ROSES--2', 'roses 2'),
    ('a.b c', 'a b c'), ('玫瑰', '玫瑰'), ('café', 'café'), ('x_', 'x ')])
def test_labels_classic_for_ascii_and_readable_otherwise(name, label):
    assert image_lists.label_for_dir(name) == label


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b'x')


def test_create_image_lists_sorts_classes_filters_and_recurses(tmp_path):
    root = str(tmp_path / 'imgs')
    for rel in ['b/1.jpg', 'b/2.JPEG', 'b/3.png', 'b/notes.txt', 'b/.DS_Store', 'b/Thumbs.db',
                'b/nested/4.jpg', 'a/x.gif', 'a/y.bmp', '.hidden/z.jpg', 'empty/readme.md']:
        _touch(os.path.join(root, rel))
    classes = image_lists.create_image_lists(root, 10, 10)
    assert [c.dir_name for c in classes] == ['a', 'b']
    files = {c.dir_name: sorted(c.training + c.validation + c.testing) for c in classes}
    assert files == {'a': ['x.gif', 'y.bmp'],
                     'b': ['1.jpg', '2.JPEG', '3.png', os.path.join('nested', '4.jpg')]}
    for c in classes:
        for category in image_lists.CATEGORIES:
            for rel in c.images(category):
                path = os.path.join(root, c.dir_name, rel)
                assert image_lists.which_set(path, 10, 10) == category


def test_split_of_a_file_ignores_other_files(tmp_path):
    root = str(tmp_path / 'imgs')
    for i in range(40):
        _touch(os.path.join(root, 'a', f'{i}.jpg'))
        _touch(os.path.join(root, 'b', f'{i}.jpg'))
    before = image_lists.create_image_lists(root, 10, 10)
    for i in range(40, 80):
        _touch(os.path.join(root, 'a', f'{i}.jpg'))
    after = image_lists.create_image_lists(root, 10, 10)
    for category in image_lists.CATEGORIES:
        assert set(before[0].images(category)) <= set(after[0].images(category))


@pytest.mark.parametrize('layout,message', [
    (None, 'image directory not found'),
    ([], 'no class folders with images'),
    (['only/1.jpg'], 'only one class folder'),
    (['Roses/1.jpg', 'roses/1.jpg'], 'both give the label'),
])
def test_bad_image_dirs_are_one_line_errors(tmp_path, layout, message):
    root = str(tmp_path / 'imgs')
    if layout is not None:
        os.makedirs(root)
        for rel in layout:
            _touch(os.path.join(root, rel))
    with pytest.raises(ToolError, match=message) as error:
        image_lists.create_image_lists(root, 10, 10)
    assert '\n' not in str(error.value)


def _touch_bytes(path: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, 'wb') as f:
            f.write(b'x')
    except OSError as e:  # macOS file systems refuse names that are not valid UTF-8.
        pytest.skip(f'this file system refuses names that are not UTF-8: {e}')


def test_names_that_are_not_utf8_are_listed_and_split_by_their_bytes(tmp_path):
    root = os.fsencode(str(tmp_path / 'imgs'))
    for rel in (b'caf\xe9/1.jpg', b'caf\xe9/2\xff.jpg', b'red/3\xfe.jpg', b'red/ok.jpg'):
        _touch_bytes(os.path.join(root, rel))
    classes = image_lists.create_image_lists(os.fsdecode(root), 10, 10)
    assert [c.dir_name for c in classes] == [os.fsdecode(b'caf\xe9'), 'red']
    assert classes[0].label == 'caf '  # Undecodable bytes are not letters.
    for image_class in classes:
        for category in image_lists.CATEGORIES:
            for rel in image_class.images(category):
                path = os.path.join(os.fsdecode(root), image_class.dir_name, rel)
                digest = hashlib.sha1(os.fsencode(path)).hexdigest()
                percentage = (int(digest, 16) % 2 ** 27) * (100.0 / (2 ** 27 - 1))
                assert percentage == pytest.approx(image_lists.split_percentage(path))
                assert image_lists.which_set(path, 10, 10) == category
    assert sorted(classes[1].training + classes[1].validation + classes[1].testing) == [
        os.fsdecode(b'3\xfe.jpg'), 'ok.jpg']


def test_folder_links_never_loop_and_list_each_image_once(tmp_path):
    root = str(tmp_path / 'imgs')
    for rel in ['a/1.jpg', 'a/sub/2.jpg', 'b/3.jpg']:
        _touch(os.path.join(root, rel))
    os.symlink('..', os.path.join(root, 'a', 'up'))
    os.symlink('..', os.path.join(root, 'a', 'sub', 'up'))
    os.symlink(os.path.join('..', 'a'), os.path.join(root, 'b', 'again'))
    classes = image_lists.create_image_lists(root, 10, 10)
    files = {c.dir_name: sorted(c.training + c.validation + c.testing) for c in classes}
    assert files == {'a': ['1.jpg', os.path.join('sub', '2.jpg')], 'b': ['3.jpg']}
