"""retrain.data.single_label_table: a flat folder plus `path,label` rows, one label per image."""
import logging
import os
import shutil

import pytest

from retrain.common.errors import ConfigError, ToolError
from retrain.data import image_lists, single_label_table
from retrain.data.image_lists import CATEGORIES


def _write(path, data: bytes = b'x') -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _splits(classes):
    return {location: (c.label, split) for c in classes for split in CATEGORIES
            for location in c.images(split)}


def test_labels_as_written_sorted_and_the_split_hashes_the_path_in_the_table(tmp_path, caplog):
    root = tmp_path / 'train'
    names = [f'img_{i:03d}.jpg' for i in range(60)] + ['sub/deep.jpg', 'unlisted.jpg']
    for name in names:
        _write(str(root / name))
    rows = ['id,label'] + [f'{name},{"Sun Flowers" if i % 2 else "café"}'
                           for i, name in enumerate(names[:-1])]
    (tmp_path / 'train.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    with caplog.at_level(logging.WARNING):
        classes = single_label_table.image_classes(str(root), str(tmp_path / 'train.csv'), 20, 20)
    assert [c.label for c in classes] == ['Sun Flowers', 'café']  # Kept, in folder-name order.
    assert all(c.dir_name == '' for c in classes)
    found = _splits(classes)
    assert sorted(found) == sorted(os.path.join(*name.split('/')) for name in names[:-1])
    for location, (_, split) in found.items():
        assert split == image_lists.which_set(location.replace(os.sep, '/'), 20, 20)
    assert {split for _, split in found.values()} == set(CATEGORIES)
    assert sum('unlisted.jpg' in r.getMessage() for r in caplog.records) == 1
    # Where the folder lies and which other images it holds change no image's split.
    moved = tmp_path / 'elsewhere' / 'train'
    shutil.copytree(str(root), str(moved))
    _write(str(moved / 'new.jpg'))
    with open(tmp_path / 'train.csv', 'a', encoding='utf-8') as f:
        f.write('new.jpg,café\n')
    again = _splits(single_label_table.image_classes(str(moved), str(tmp_path / 'train.csv'), 20,
                                                     20))
    assert {k: v for k, v in again.items() if k != 'new.jpg'} == found


@pytest.mark.parametrize('table,message', [
    ('a.jpg,x\nb.jpg,x;y\n', r'line 2: 2 labels for one image \(x;y\); give --multi_label'),
    ('a.jpg,x\n./a.jpg,y\n', r'gives a.jpg different labels on lines 1, 2; give one label per '
                             r'image, or --multi_label'),
    ('a.jpg,x,y\n', r'line 1: expected path,label but got 3 fields'),
    # A quote left open takes the rest of the file into one label: the message shows its start.
    ('a.jpg,"x\n' + 'b.jpg,y\n' * 500,
     r"line 1: the label 'x(\\nb.jpg,y){4}\\nb.jpg,\.\.\.' holds a line break \(a quote left "
     r"open\?\)"),
])
def test_rows_a_single_label_table_cannot_hold_are_one_line_errors(tmp_path, table, message):
    _write(str(tmp_path / 'images' / 'a.jpg'))
    (tmp_path / 'labels.csv').write_text(table, encoding='utf-8')
    with pytest.raises(ConfigError, match=message) as error:
        single_label_table.image_classes(str(tmp_path / 'images'), str(tmp_path / 'labels.csv'),
                                         10, 10)
    assert str(error.value).startswith(str(tmp_path / 'labels.csv'))
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('delimiter', [';', '\t'])
def test_semicolon_and_tab_separated_tables_read_as_the_comma_one(tmp_path, delimiter):
    """As spreadsheets save CSV where the comma is the decimal sign, and TSV files."""
    for name in ('a.jpg', 'b, c.jpg', 'd.jpg'):
        _write(str(tmp_path / 'images' / name))
    rows = [('path', 'label'), ('a.jpg', 'Sun, Flowers'), ('"b, c.jpg"', 'x'), ('d.jpg', 'x')]
    tables = {}
    for name, separator in (('comma.csv', ','), ('other.csv', delimiter)):
        quoted = [(path, f'"{label}"' if ',' in label else label) for path, label in rows]
        (tmp_path / name).write_text('\r\n'.join(separator.join(row) for row in quoted),
                                     encoding='utf-8')
        tables[name] = _splits(single_label_table.image_classes(
            str(tmp_path / 'images'), str(tmp_path / name), 10, 10))
    assert tables['other.csv'] == tables['comma.csv']
    assert sorted(label for label, _ in tables['comma.csv'].values()) == ['Sun, Flowers', 'x',
                                                                          'x']


@pytest.mark.parametrize('rows', [
    ['a.jpg\tSun, Flowers', 'b.jpg\tRoses, red', 'd.jpg\tx'],  # Unquoted, no header.
    ['a;b.jpg,Sun Flowers', 'b.jpg,Roses', 'd.jpg,x'],  # ';' splits the first line in two too.
])
def test_the_delimiter_is_the_one_most_lines_are_split_by(tmp_path, rows):
    """The first line alone chose: a comma in the first label of a TSV file made it CSV, and the
    next line without one was 'expected path,label but got 1 fields'."""
    for name in ('a.jpg', 'a;b.jpg', 'b.jpg', 'd.jpg'):
        _write(str(tmp_path / 'images' / name))
    (tmp_path / 'labels.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    found = _splits(single_label_table.image_classes(str(tmp_path / 'images'),
                                                     str(tmp_path / 'labels.csv'), 10, 10))
    separator = '\t' if '\t' in rows[0] else ','
    expected = dict(row.split(separator) for row in rows)
    assert {location: label for location, (label, _) in found.items()} == expected


def test_a_table_of_one_label_is_refused(tmp_path):
    _write(str(tmp_path / 'images' / 'a.jpg'))
    (tmp_path / 'labels.csv').write_text('a.jpg,x\n', encoding='utf-8')
    with pytest.raises(ToolError, match='1 label.s. found in .*classification needs at least two'):
        single_label_table.image_classes(str(tmp_path / 'images'), str(tmp_path / 'labels.csv'),
                                         10, 10)


@pytest.mark.parametrize('table', ['', 'id,label\n', 'a,x\nb,y\n'])
def test_a_table_that_names_none_of_the_images_is_refused_in_one_line(tmp_path, caplog, table):
    """Empty, a header alone, or written for other paths (here, ids without their extension):
    one error, not a warning for each image and each row."""
    for name in ('a.jpg', 'b.jpg'):
        _write(str(tmp_path / 'images' / name))
    (tmp_path / 'labels.csv').write_text(table, encoding='utf-8')
    with caplog.at_level(logging.WARNING), pytest.raises(
            ConfigError, match=r'no row of .*labels.csv names an image below .*images: rows give '
                               r"each image's path relative to that folder, extension included"):
        single_label_table.image_classes(str(tmp_path / 'images'), str(tmp_path / 'labels.csv'),
                                         10, 10)
    assert not caplog.records


def test_absolute_paths_inside_the_folder_and_labels_written_apart(tmp_path, caplog):
    """An absolute path inside image_dir names its image; an accent composed or decomposed is
    one label; labels that differ in case stay two, with a warning."""
    root = tmp_path / 'images'
    for name in ('a.jpg', 'b.jpg', 'c.jpg', 'd.jpg'):
        _write(str(root / name))
    _write(str(tmp_path / 'outside.jpg'))
    rows = [f'{root / "a.jpg"},caf\u00e9', 'b.jpg,cafe\u0301', 'c.jpg,Rose', 'd.jpg,rose',
            f'{tmp_path / "outside.jpg"},rose']
    (tmp_path / 'labels.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    with caplog.at_level(logging.WARNING):
        classes = single_label_table.image_classes(str(root), str(tmp_path / 'labels.csv'), 0, 0)
    assert {c.label: sorted(c.training) for c in classes} == {
        'Rose': ['c.jpg'], 'café': ['a.jpg', 'b.jpg'], 'rose': ['d.jpg']}
    messages = [r.getMessage() for r in caplog.records]
    assert any("the labels 'Rose', 'rose' differ only in case" in m for m in messages)
    assert any('outside.jpg, which lies outside the image directory' in m for m in messages)


def test_a_quoted_path_keeps_its_spaces_and_an_empty_path_is_warned_about(tmp_path, caplog):
    root = tmp_path / 'images'
    names = [f' img {i} .jpg' for i in range(6)] + [f'plain_{i}.jpg' for i in range(6)]
    for name in names:
        _write(str(root / name))
    rows = ['path,label'] + [f'"{name}",{"a" if i % 2 else "b"}' for i, name in enumerate(names)]
    rows[-1] = rows[-1].replace('"plain_5.jpg"', ' plain_5.jpg ')  # Spaces around: stripped.
    rows.append(',a')
    (tmp_path / 'labels.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    with caplog.at_level(logging.WARNING):
        classes = single_label_table.image_classes(str(root), str(tmp_path / 'labels.csv'), 0,
                                                   0)
    assert sorted(_splits(classes)) == sorted(names)
    assert f'{tmp_path / "labels.csv"} line 14 names no image (its path is empty): skipped' \
        in caplog.text
