"""Unpacking archives safely, on every Python the README promises (3.9 or newer).

Pythons before the 2023 patch releases lack tarfile's `filter='data'`; there `extract_checked`
does the refusing. Both paths are tested here, whichever this interpreter would take.
"""
import io
import os
import tarfile

import pytest

from retrain.common import downloads
from retrain.common.errors import ToolError


def _archive(path, members) -> str:
    """A .tar.gz of (name, kind, payload) members: kind 'file', 'dir', 'symlink' or 'hardlink'."""
    with tarfile.open(path, 'w:gz') as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == 'file':
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE,
                         'hardlink': tarfile.LNKTYPE, 'fifo': tarfile.FIFOTYPE}[kind]
            info.linkname = payload or ''
            tar.addfile(info)
    return str(path)


_GOOD = [('photos', 'dir', None), ('photos/roses', 'dir', None),
         ('photos/roses/a.jpg', 'file', b'jpeg'), ('photos/latest.jpg', 'symlink', 'roses/a.jpg'),
         ('photos/copy.jpg', 'hardlink', 'photos/roses/a.jpg')]
_UNSAFE = {  # Absolute names are made absolute inside the test's own folder (see _unsafe).
    'absolute path': [('{tmp}/evil.txt', 'file', b'x')],
    'climbs out': [('photos/../../evil.txt', 'file', b'x')],
    'link out': [('photos', 'dir', None), ('photos/up', 'symlink', '../..')],
    'absolute link': [('etc', 'symlink', '{tmp}')],
    'hard link out': [('passwd', 'hardlink', '../../etc/passwd')],
    'fifo': [('pipe', 'fifo', None)],
}


def _unsafe(case: str, tmp_path):
    return [(name.format(tmp=tmp_path), kind, payload.format(tmp=tmp_path)
             if isinstance(payload, str) else payload) for name, kind, payload in _UNSAFE[case]]


@pytest.mark.parametrize('checked', [False, True], ids=['this python', 'checked fallback'])
def test_a_good_archive_is_unpacked(tmp_path, checked):
    archive = _archive(tmp_path / 'good.tgz', _GOOD)
    target = tmp_path / 'out'
    target.mkdir()
    with tarfile.open(archive) as tar:
        if checked:
            downloads.extract_checked(tar, str(target))
        else:
            downloads._extract_all(tar, str(target))
    assert (target / 'photos' / 'roses' / 'a.jpg').read_bytes() == b'jpeg'
    assert (target / 'photos' / 'latest.jpg').read_bytes() == b'jpeg'
    assert (target / 'photos' / 'copy.jpg').read_bytes() == b'jpeg'


@pytest.mark.parametrize('case', sorted(_UNSAFE))
def test_the_checked_fallback_refuses_what_leaves_the_folder(tmp_path, case):
    archive = _archive(tmp_path / 'bad.tgz', _unsafe(case, tmp_path))
    target = tmp_path / 'deep' / 'out'
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar, pytest.raises(tarfile.TarError):
        downloads.extract_checked(tar, str(target))
    assert os.listdir(target) == []  # Refused before anything was written.
    assert not (tmp_path / 'evil.txt').exists() and not (tmp_path / 'deep' / 'evil.txt').exists()


def test_extract_reports_an_unsafe_archive_in_one_line(tmp_path):
    archive = _archive(tmp_path / 'bad.tgz', _unsafe('climbs out', tmp_path))
    with pytest.raises(ToolError, match='cannot extract archive .*bad.tgz'):
        downloads.extract(archive, str(tmp_path / 'flower_photos'))
    assert not (tmp_path / 'flower_photos').exists()
