"""retrain.data.multilabel_lists: the three ways to give labels, one example per image, one
split."""
import logging
import os
import re
import shutil
import unicodedata

import numpy as np
import pytest

from retrain.common.errors import ConfigError, ToolError
from retrain.data import image_lists, multilabel_lists
from retrain.data.image_lists import CATEGORIES

from conftest import write_image
from multilabel_images import PAIRS, make_pair_folders


def _by_key(found: multilabel_lists.MultiLabelImages):
    return {image.key: (category, image) for category in CATEGORIES
            for image in found.images[category]}


def test_an_image_in_two_class_folders_is_one_example_with_both_labels(tmp_path):
    root = make_pair_folders(str(tmp_path / 'images'))
    found = multilabel_lists.gather(root, 10, 10)
    assert found.labels == ['blue', 'green', 'red']
    images = _by_key(found)
    assert len(images) == 12 * len(PAIRS)
    for key, (_, image) in images.items():
        first, second = key.split('_')[:2]
        assert image.labels == {first, second}
        # Its bottleneck comes from its first folder in sorted order, once.
        assert image.folder == min(first, second) and image.relative == key


def test_the_split_is_one_per_image_where_the_fork_split_copies_apart(tmp_path):
    root = make_pair_folders(str(tmp_path / 'images'), per_pair=40)
    found = multilabel_lists.gather(root, 30, 30)
    images = _by_key(found)
    for key, (category, _) in images.items():
        assert category == image_lists.which_set(key, 30, 30)
    # Classic per-file hashing of the folder copies would have put some image in two splits.
    leaks = [key for key in images if len({image_lists.which_set(os.path.join(root, folder, key),
                                                                 30, 30)
                                           for folder in key.split('_')[:2]}) > 1]
    assert leaks, 'this set cannot show the leak the rule prevents'
    # The split does not depend on where the folder is.
    moved = str(tmp_path / 'elsewhere' / 'images')
    shutil.copytree(root, moved)
    assert ({k: c for k, (c, _) in _by_key(multilabel_lists.gather(moved, 30, 30)).items()}
            == {k: c for k, (c, _) in images.items()})


def test_label_files_as_the_fork_read_them(tmp_path, caplog):
    images, labels_dir = tmp_path / 'images' / 'multi-label', tmp_path / 'image_labels_dir'
    rng = np.random.default_rng(1)
    labels_dir.mkdir(parents=True)
    for i in range(6):
        write_image(str(images / f'photo_{i}.jpg'), (120, 120, 120), rng)
        if i < 5:  # photo_5 has no labels file.
            (labels_dir / f'photo_{i}.jpg.txt').write_text(
                'car\n' + ('accident\n' if i % 2 else '\n') + 'car\n', encoding='utf-8')
    (labels_dir / 'gone.jpg.txt').write_text('car\n', encoding='utf-8')
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(str(tmp_path / 'images'), 10, 10, str(labels_dir))
    assert found.labels == ['accident', 'car']  # Not the folder's name.
    images_found = _by_key(found)
    assert sorted(images_found) == [f'photo_{i}.jpg' for i in range(5)]
    for i in range(5):
        image = images_found[f'photo_{i}.jpg'][1]
        assert image.labels == ({'car', 'accident'} if i % 2 else {'car'})
        assert (image.folder, image.relative) == ('multi-label', f'photo_{i}.jpg')
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum('photo_5.jpg' in w for w in warnings) == 1
    assert sum('gone.jpg.txt' in w for w in warnings) == 1


@pytest.mark.parametrize('encoding,separator', [  # Excel, PowerShell 5, a TSV file.
    ('utf-8', ','), ('utf-8-sig', ','), ('utf-16', ','), ('utf-8', '\t')])
def test_a_labels_table_with_header_nested_paths_and_unicode_labels(tmp_path, caplog, encoding,
                                                                    separator):
    root = tmp_path / 'images'
    rng = np.random.default_rng(2)
    for path in ('a/one.jpg', 'a/b/two.jpg', 'three.jpg', 'unlisted.jpg'):
        write_image(str(root / path), (90, 90, 90), rng)
    (tmp_path / 'labels.csv').write_text(
        'image,labels\na/one.jpg,shirt;red\na/b/two.jpg, shirt ; 玫瑰\nthree.jpg,red\n'
        'missing.jpg,red\n'.replace(',', separator), encoding=encoding)
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(str(root), 0, 0,
                                        image_labels_file=str(tmp_path / 'labels.csv'))
    assert found.labels == ['red', 'shirt', '玫瑰']
    images = {key: image for key, (_, image) in _by_key(found).items()}
    assert {key: image.labels for key, image in images.items()} == {
        'a/one.jpg': {'shirt', 'red'}, 'a/b/two.jpg': {'shirt', '玫瑰'}, 'three.jpg': {'red'}}
    assert (images['a/b/two.jpg'].folder, images['a/b/two.jpg'].relative) == (
        os.path.join('a', 'b'), 'two.jpg')
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum('unlisted.jpg' in w for w in warnings) == 1
    assert sum('missing.jpg' in w for w in warnings) == 1


def test_bad_tables_and_flag_mixes_are_one_line_errors(tmp_path):
    root = make_pair_folders(str(tmp_path / 'images'), per_pair=2)
    table = tmp_path / 'labels.csv'
    table.write_text('red/red_green_000.jpg,red,green\n', encoding='utf-8')
    with pytest.raises(ToolError, match=r'labels.csv line 1: expected path,label1;label2'):
        multilabel_lists.gather(root, 10, 10, image_labels_file=str(table))
    table.write_text('red/red_green_000.jpg;red\n', encoding='utf-8')  # ';' separates labels.
    with pytest.raises(ToolError, match=r'line 1: expected path,label1;label2 but got 1 field'):
        multilabel_lists.gather(root, 10, 10, image_labels_file=str(table))
    with pytest.raises(ToolError, match='not both'):
        multilabel_lists.gather(root, 10, 10, str(tmp_path), str(table))
    with pytest.raises(ToolError, match='labels file not found'):
        multilabel_lists.gather(root, 10, 10, image_labels_file=str(tmp_path / 'nope.csv'))
    with pytest.raises(ToolError) as error:
        multilabel_lists.gather(root, 10, 10, image_labels_file=str(tmp_path))
    assert str(error.value) == f'cannot read labels file {tmp_path}: Is a directory'


def _write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_different_photos_sharing_a_name_in_class_folders_stay_apart(tmp_path, caplog):
    """Cameras name files 001.jpg in every folder: the fork merged daisy/001.jpg, roses/001.jpg
    and tulips/001.jpg into one image labelled with all three and dropped two photos."""
    root = str(tmp_path / 'images')
    for folder, data in (('daisy', b'a' * 50), ('roses', b'b' * 50), ('tulips', b'c' * 60)):
        _write(os.path.join(root, folder, '001.jpg'), data)  # Two of one size: read to tell.
    for folder in ('daisy', 'roses', 'tulips'):  # Copies: one image, two labels.
        _write(os.path.join(root, folder, '002.jpg'), b'same' if folder != 'tulips' else b'else')
    _write(os.path.join(root, 'roses', 'own.jpg'), b'x')
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(root, 30, 30)
    images = {key: image for key, (_, image) in _by_key(found).items()}
    assert {key: (image.folder, image.relative, image.labels) for key, image in images.items()} == {
        '001.jpg': ('daisy', '001.jpg', {'daisy'}),
        'roses/001.jpg': ('roses', '001.jpg', {'roses'}),
        'tulips/001.jpg': ('tulips', '001.jpg', {'tulips'}),
        '002.jpg': ('daisy', '002.jpg', {'daisy', 'roses'}),
        'tulips/002.jpg': ('tulips', '002.jpg', {'tulips'}),
        'own.jpg': ('roses', 'own.jpg', {'roses'})}
    for key, (category, _) in _by_key(found).items():  # Unclashed names keep their split.
        assert category == image_lists.which_set(key, 30, 30)
    assert [w for w in _warnings(caplog) if 'different photos' in w] == [
        '2 file name(s) name different photos in different class folders (001.jpg, 002.jpg): '
        'each photo is an image of its own, labelled by the folders that hold it']


def test_label_files_label_each_different_photo_of_their_name(tmp_path, caplog):
    """Two different photos named x.jpg in two sub-folders: the fork used one, silently."""
    root, labels_dir = tmp_path / 'images', tmp_path / 'labels'
    for folder, data in (('a', b'first'), ('b', b'other'), ('c', b'first'), ('d', b'y')):
        _write(str(root / folder / ('x.jpg' if folder != 'd' else 'y.jpg')), data)
    labels_dir.mkdir()
    (labels_dir / 'x.jpg.txt').write_text('car\n', encoding='utf-8')
    (labels_dir / 'y.jpg.txt').write_text('bus\n', encoding='utf-8')
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(str(root), 10, 10, str(labels_dir))
    images = {key: image for key, (_, image) in _by_key(found).items()}
    assert {key: (image.folder, image.relative, image.labels) for key, image in images.items()} == {
        'x.jpg': ('a', 'x.jpg', {'car'}), 'b/x.jpg': ('b', 'x.jpg', {'car'}),
        'y.jpg': ('d', 'y.jpg', {'bus'})}
    assert _warnings(caplog) == [
        f'Labels file {labels_dir / "x.jpg.txt"} applies to 2 different images named x.jpg: '
        f'{root / "a" / "x.jpg"} = {root / "c" / "x.jpg"}; {root / "b" / "x.jpg"}']


def _labelled(tmp_path, table: str, caplog, newline: str = '\n'):
    root = tmp_path / 'images'
    for rel in ('daisy/x.jpg', 'daisy/y.jpg', 'daisy/z.jpg', 'roses/w.jpg'):
        _write(str(root / rel), rel.encode())
    with open(tmp_path / 'labels.csv', 'w', encoding='utf-8', newline='') as f:
        f.write(table.replace('\n', newline))
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(str(root), 0, 0,
                                        image_labels_file=str(tmp_path / 'labels.csv'))
    return {key: image.labels for key, (_, image) in _by_key(found).items()}, _warnings(caplog)


@pytest.mark.parametrize('newline', ['\n', '\r\n', '\r'])
def test_table_paths_are_normalized_and_paths_outside_are_refused(tmp_path, caplog, newline):
    """`find .` prints ./daisy/x.jpg; Windows tables use backslashes: all were 'not an image'.
    Old Mac line ends (\\r) made the whole table one row."""
    labels, warnings = _labelled(tmp_path, (
        './daisy/x.jpg,a\nroses/../daisy/y.jpg,b\ndaisy\\z.jpg,c\n../images/roses/w.jpg,d\n'
        '/roses/w.jpg,d\nC:\\images\\roses\\w.jpg,d\n'), caplog, newline)
    assert labels == {'daisy/x.jpg': {'a'}, 'daisy/y.jpg': {'b'}, 'daisy/z.jpg': {'c'}}
    for line, path in ((4, '../images/roses/w.jpg'), (5, '/roses/w.jpg'),
                       (6, 'C:\\images\\roses\\w.jpg')):
        assert sum(w.startswith(f'{tmp_path / "labels.csv"} line {line} names {path}, which '
                                'lies outside the image directory') for w in warnings) == 1


def test_rows_giving_one_image_different_labels_are_merged_with_a_warning(tmp_path, caplog):
    labels, warnings = _labelled(tmp_path, (
        'path,labels\ndaisy/x.jpg,a;b\n"daisy/y.jpg",c\n./daisy/x.jpg,a\ndaisy/y.jpg,c\n'
        'daisy/x.jpg,a;b\n'), caplog)
    assert labels == {'daisy/x.jpg': {'a', 'b'}, 'daisy/y.jpg': {'c'}}
    conflicts = [w for w in warnings if 'different labels' in w]
    assert conflicts == [f'{tmp_path / "labels.csv"} gives daisy/x.jpg different labels on '
                         'lines 2, 4, 6: it gets all of them']


@pytest.mark.parametrize('table,line,message', [
    ('daisy/x.jpg,a\ndaisy/y.jpg,"b\nc"\n', 2, r"the label 'b\\nc' holds a line break"),
    ('"daisy/\nx.jpg",a\ndaisy/y.jpg,"b;c\u2028d"\n', 3, r"the label 'c\\u2028d' holds a line"),
    ('"daisy/\n\nx.jpg",a\ndaisy/y.jpg,a,b\n', 4, 'expected path,label1;label2 but got 3'),
    ('daisy/x.jpg,"' + 'a' * 200000 + '"\n', 1, r'not CSV \(field larger than field limit'),
])
def test_tables_a_labels_file_cannot_hold_are_refused_naming_the_line(tmp_path, caplog, table,
                                                                      line, message):
    """A quoted label with a line break once wrote a labels file of more lines than labels."""
    with pytest.raises(ConfigError, match=rf'^{re.escape(str(tmp_path))}.labels.csv line {line}: '
                                          rf'{message}') as error:
        _labelled(tmp_path, table, caplog)
    assert '\n' not in str(error.value)


def test_a_table_names_images_whatever_the_composition_of_their_accents(tmp_path, caplog):
    """macOS writes café decomposed (e + U+0301), tables hold it composed: no row matched."""
    root = tmp_path / 'images'
    decomposed = unicodedata.normalize('NFD', 'café/crème.jpg')
    _write(str(root / decomposed), b'1')
    _write(str(root / 'tea.jpg'), b'2')
    (tmp_path / 'labels.csv').write_text('café/crème.jpg,hot;sweet\ntea.jpg,hot\n',
                                         encoding='utf-8')
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(str(root), 0, 0,
                                        image_labels_file=str(tmp_path / 'labels.csv'))
    assert {key: image.labels for key, (_, image) in _by_key(found).items()} == {
        decomposed: {'hot', 'sweet'}, 'tea.jpg': {'hot'}}  # The split key is the file's name.
    assert not _warnings(caplog)


def test_label_files_compose_accents_and_warn_of_labels_differing_in_case(tmp_path, caplog):
    """A label file written from a macOS name holds café decomposed (e + U+0301), another one
    typed holds it composed: they once gave two labels that print alike, where a table gives
    one; and labels differing only in case were not warned of, as a table's are."""
    images, labels_dir = tmp_path / 'images', tmp_path / 'labels'
    for i, text in enumerate([unicodedata.normalize('NFD', 'café') + '\n', 'café\nTea\n',
                              'tea\n']):
        _write(str(images / f'{i}.jpg'), bytes([i]))
        _write(str(labels_dir / f'{i}.jpg.txt'), text.encode('utf-8'))
    with caplog.at_level(logging.WARNING):
        found = multilabel_lists.gather(str(images), 0, 0, str(labels_dir))
    assert found.labels == ['Tea', 'café', 'tea']
    assert _warnings(caplog) == [f"{labels_dir}: the labels 'Tea', 'tea' differ only in case: "
                                 'they are 2 labels']
