"""retrain.data.image_files: one rule for the images retrain trains on and label_image
classifies."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from retrain.common.places import is_local
from retrain.data import image_files

from conftest import label_image_blocks, make_image_folder, retrain_args, run_module


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(b'x')


@pytest.mark.parametrize('name,image', [
    ('a.jpg', True), ('b.JPEG', True), ('c.webp', True), ('d.Png', True), ('e.gif', True),
    ('f.bmp', True), ('.hidden.jpg', False), ('._photo.jpg', False), ('Thumbs.db', False),
    ('desktop.ini', False), ('notes.txt', False), ('jpg', False)])
def test_which_names_are_images(name, image):
    assert image_files.is_image_name(name) == image


def test_is_local_tells_urls_from_paths():
    assert is_local('/photos') and is_local('photos') and is_local(r'C:\photos')
    assert not is_local('gs://bucket/photos') and not is_local('ram://x')


def test_find_lists_files_before_sub_folders_and_skips_hidden_folders(tmp_path):
    for rel in ['z.jpg', 'a.webp', 'sub/b.jpg', 'sub/._b.jpg', '.cache/c.jpg', 'Thumbs.db',
                'sub/deeper/d.png']:
        _touch(str(tmp_path / rel))
    assert image_files.find(str(tmp_path)) == [
        'a.webp', 'z.jpg', os.path.join('sub', 'b.jpg'), os.path.join('sub', 'deeper', 'd.png')]


def test_folder_links_are_followed_only_when_asked_and_each_folder_once(tmp_path):
    top, outside = tmp_path / 'top', tmp_path / 'outside'
    for rel in ['top/a/1.jpg', 'outside/2.jpg']:
        _touch(str(tmp_path / rel))
    os.symlink('..', top / 'a' / 'up')  # Would loop.
    os.symlink(str(outside), top / 'b')  # New photos.
    os.symlink(str(outside), top / 'c')  # The same folder again.
    os.symlink('1.jpg', top / 'a' / 'link.jpg')  # A file link is a file.
    assert image_files.find(str(top)) == [os.path.join('a', '1.jpg'), os.path.join('a', 'link.jpg')]
    assert image_files.find(str(top), follow_folder_links=True) == [
        os.path.join('a', '1.jpg'), os.path.join('a', 'link.jpg'), os.path.join('b', '2.jpg')]


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='named pipes are POSIX')
def test_pipes_are_not_files_and_broken_links_are(tmp_path):
    """Reading a pipe named like an image hung the run; a broken link is reported unreadable."""
    _touch(str(tmp_path / 'a.jpg'))
    os.mkfifo(tmp_path / 'pipe.jpg')
    os.symlink('pipe.jpg', tmp_path / 'to_pipe.jpg')
    os.symlink('gone.jpg', tmp_path / 'broken.jpg')
    assert image_files.find(str(tmp_path)) == ['a.jpg', 'broken.jpg']


def test_a_link_that_loops_is_reported_as_broken_links_are(tmp_path):
    """A link to itself was left out without a word: neither used nor named as skipped."""
    _touch(str(tmp_path / 'a.jpg'))
    os.symlink('loop.jpg', tmp_path / 'loop.jpg')
    assert image_files.find(str(tmp_path)) == ['a.jpg', 'loop.jpg']


def test_remote_folders_are_listed_by_gfile_with_the_same_rule():
    root = 'ram://image_files_rule'
    tf.io.gfile.makedirs(f'{root}/x/y')  # ram:// has no folders but those made.
    for rel in ['x/1.jpg', 'x/.2.jpg', 'x/y/3.webp', 'x/._4.jpg', 'x/5.txt']:
        with tf.io.gfile.GFile(f'{root}/{rel}', 'wb') as f:
            f.write(b'x')
    assert image_files.find(f'{root}/x', follow_folder_links=True) == ['1.jpg', 'y/3.webp']
    assert image_files.listdir(root) == ['x'] and image_files.isdir(f'{root}/x')


def _webp(colour) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 48, 3), colour, np.uint8)).save(buffer, 'WEBP')
    return buffer.getvalue()


def test_label_image_classifies_exactly_what_retrain_trains_on(tmp_path, tiny_module):
    """A .webp is trained on and classified; `.hidden.jpg` and macOS's `._photo.jpg` resource
    forks (not images) are neither: label_image once classified the hidden ones (and failed on
    the fork, exit 1) and skipped the .webp."""
    images = make_image_folder(str(tmp_path / 'images'), per_class=6)
    with open(os.path.join(images, 'red', 'photo.webp'), 'wb') as f:
        f.write(_webp((200, 40, 40)))
    with open(os.path.join(images, 'red', 'red_000.jpg'), 'rb') as f:
        jpeg = f.read()
    with open(os.path.join(images, 'green', '.hidden.jpg'), 'wb') as f:
        f.write(jpeg)
    with open(os.path.join(images, 'blue', '._photo.jpg'), 'wb') as f:
        f.write(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ')  # AppleDouble header.
    out = str(tmp_path / 'out')
    trained = run_module('retrain', *retrain_args(images, tiny_module, out, 5))
    assert trained.returncode == 0, trained.stderr[-3000:]
    bottlenecks = os.path.join(out, 'bn')
    cached = [os.path.relpath(os.path.join(folder, name), bottlenecks)
              for folder, _, names in os.walk(bottlenecks) for name in names
              if name.endswith('.txt')]
    classified = run_module('label_image', '--graph', os.path.join(out, 'graph.pb'),
                            '--labels', os.path.join(out, 'labels.txt'), images)
    assert classified.returncode == 0, classified.stderr
    used = sorted(os.path.relpath(path, images) for path in label_image_blocks(classified.stdout))
    assert os.path.join('red', 'photo.webp') in used and len(used) == 3 * 6 + 1
    assert len(cached) == len(used)
    assert all(any(c.startswith(f'{u}_') for c in cached) for u in used)
