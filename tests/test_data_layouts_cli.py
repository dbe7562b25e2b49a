"""`python -m retrain` on the layouts beyond class folders: a single-label table
(--image_labels_file) and the user's own split (--split_folders), end to end."""
import os
import re
import shutil

import pytest

from conftest import CLASS_COLOURS, make_image_folder, retrain_args, run_module
from multilabel_images import make_pair_folders


def _final(stderr: str):
    """(accuracy %, N) of the `Final test accuracy` line."""
    match = re.search(r'Final test accuracy = ([\d.]+)% \(N=(\d+)\)', stderr)
    assert match, stderr[-3000:]
    return float(match.group(1)), int(match.group(2))


def _flat_with_table(folders: str, root: str) -> str:
    """The images of class folders in one flat folder `root`/images, and `root`/train.csv."""
    rows = ['path,label']
    for label in sorted(os.listdir(folders)):
        for name in sorted(os.listdir(os.path.join(folders, label))):
            os.makedirs(os.path.join(root, 'images'), exist_ok=True)
            shutil.copy(os.path.join(folders, label, name), os.path.join(root, 'images', name))
            rows.append(f'{name},{label}')
    table = os.path.join(root, 'train.csv')
    with open(table, 'w', encoding='utf-8') as f:
        f.write('\n'.join(rows) + '\n')
    return table


def _cached(out: str):
    """The image paths whose bottleneck text files the run cached, relative to its cache."""
    bn = os.path.join(out, 'bn')
    return sorted(re.match(r'.*?\.(?:jpg|png)', os.path.relpath(os.path.join(folder, name), bn))
                  .group(0) for folder, _, names in os.walk(bn) for name in names
                  if name.endswith('.txt'))


def _images(root: str):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names
                  if name.endswith(('.jpg', '.png')))


def test_a_table_trains_as_well_as_the_same_photos_in_class_folders(tmp_path, tiny_module,
                                                                    image_dir):
    table = _flat_with_table(image_dir, str(tmp_path / 'flat'))
    runs = {}
    for form, extra in (('folders', ()), ('table', ('--image_labels_file', table))):
        images = str(tmp_path / 'flat' / 'images') if extra else image_dir
        out = str(tmp_path / form)
        result = run_module('retrain', *retrain_args(images, tiny_module, out, 100,
                                                     '--random_seed', '0', *extra))
        assert result.returncode == 0, result.stderr[-3000:]
        assert 'Found 3 classes in' in result.stderr
        with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
            assert f.read() == 'blue\ngreen\nred\n'
        runs[form] = _final(result.stderr)
    (folders, _), (table_accuracy, tested) = runs['folders'], runs['table']
    assert tested > 0
    assert table_accuracy >= 90 and folders >= 90 or abs(table_accuracy - folders) <= 5, runs
    # Cached at its path below the image folder, as multi-label tables are.
    assert _cached(str(tmp_path / 'table')) == _images(str(tmp_path / 'flat' / 'images'))


def test_two_labels_on_a_row_of_a_single_label_table_suggest_multi_label(tmp_path, tiny_module,
                                                                         image_dir):
    table = tmp_path / 'labels.csv'
    table.write_text('red/red_000.jpg,red\nred/red_001.jpg,red;blue\n', encoding='utf-8')
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 5,
                                                 '--image_labels_file', str(table)))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'retrain: error: {table} line 2: 2 labels for one image (blue;red); give --multi_label '
        'to train several labels per image')
    assert not os.path.exists(os.path.join(out, 'bn'))


def test_a_table_that_is_not_utf8_is_a_usage_error(tmp_path, tiny_module, image_dir):
    """As every other table the run cannot use (README: exit codes); it was exit 1."""
    table = tmp_path / 'labels.csv'
    table.write_bytes('red/red_000.jpg,r\xf6d\n'.encode('latin-1'))
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path / 'out'), 5,
                                                 '--image_labels_file', str(table)))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'retrain: error: labels file is not UTF-8 text: {table}')


def _split_tree(root: str) -> str:
    """train/ and val/ of correctly coloured class folders; test/ of images in the wrong folder
    (red photos in test/blue ...): a test set of test/ alone scores 0%."""
    make_image_folder(os.path.join(root, 'train'), per_class=20, seed=1)
    make_image_folder(os.path.join(root, 'val'), per_class=5, seed=2)
    colours = list(CLASS_COLOURS)
    wrong = {name: CLASS_COLOURS[colours[(i + 1) % 3]] for i, name in enumerate(colours)}
    make_image_folder(os.path.join(root, 'test'), per_class=4, seed=3, colours=wrong)
    return root


def test_split_folders_train_validate_and_test_on_exactly_the_users_split(tmp_path,
                                                                          tiny_module):
    root = _split_tree(str(tmp_path / 'images'))
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(root, tiny_module, out, 60, '--split_folders',
                                                 '--random_seed', '0'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'Found 3 classes in \S+: 60 training, 15 validation, 12 testing images',
                     result.stderr)
    assert _final(result.stderr) == (0.0, 12)  # Only (and all) the images of test/.
    assert re.search(r'Validation accuracy = 100\.0% \(N=100\)', result.stderr)
    assert _cached(out) == _images(root)
    with open(os.path.join(out, 'labels.txt'), encoding='utf-8') as f:
        assert f.read() == 'blue\ngreen\nred\n'


def test_split_folders_with_multi_label_class_folders(tmp_path, tiny_module):
    root = tmp_path / 'images'
    for folder, per_pair in (('train', 8), ('validation', 2), ('test', 3)):
        make_pair_folders(str(root / folder), per_pair=per_pair)
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(str(root), tiny_module, out, 20,
                                                 '--multi_label', '--split_folders'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'Found 3 labels in \S+: 24 training, 6 validation, 9 testing images',
                     result.stderr)
    assert _final(result.stderr)[1] == 9


@pytest.mark.parametrize('extra,message', [
    (('--testing_percentage', '10'), '--split_folders takes the split from the folders: drop '
                                     '--testing_percentage and --validation_percentage'),
    (('--validation_percentage=20',), '--split_folders takes the split from the folders: drop '
                                      '--testing_percentage and --validation_percentage'),
    (('--image_labels_file', 'labels.csv'), '--split_folders reads class folders only, not '
                                            '--image_labels_file'),
])
def test_split_folders_refuse_what_contradicts_them_before_any_work(tmp_path, tiny_module,
                                                                    extra, message):
    root = _split_tree(str(tmp_path / 'images'))
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(root, tiny_module, out, 5, '--split_folders',
                                                 *extra))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f'retrain: error: {message}'
    assert not os.path.exists(os.path.join(out, 'bn'))


def test_classes_missing_from_train_are_one_error_naming_them_all(tmp_path, tiny_module):
    """Only the first was named: a user with three such classes ran three times."""
    root = _split_tree(str(tmp_path / 'images'))
    make_image_folder(os.path.join(root, 'val'), per_class=2, colours={'purple': (120, 0, 120)})
    make_image_folder(os.path.join(root, 'test'), per_class=2,
                      colours={'orange': (250, 150, 0), 'purple': (120, 0, 120)})
    out = str(tmp_path / 'out')
    result = run_module('retrain', *retrain_args(root, tiny_module, out, 5, '--split_folders'))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "retrain: error: --split_folders: classes 'orange', 'purple' have images in val/ or test/ "
        'but none in train/: a class with no training images cannot be learnt; add some or '
        'remove them')
    assert not os.path.exists(os.path.join(out, 'bn'))
