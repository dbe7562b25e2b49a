"""Downloading and unpacking archives (the flower photos, legacy model archives), safely.

Downloads go to a temporary file with a progress bar and are renamed into place when complete;
archives are unpacked into a temporary folder that is renamed into place, so an interrupted run
never leaves something that a later run would take for finished.
"""
import os
import tarfile
import urllib.error
import urllib.request

from absl import logging

from retrain.common import fileio
from retrain.common.errors import ToolError
from retrain.common.progress import Progress

FLOWER_PHOTOS_URL = ('https://storage.googleapis.com/download.tensorflow.org/example_images/'
                     'flower_photos.tgz')
CHUNK_BYTES = 1 << 20


def default_cache_dir() -> str:
    return os.environ.get('RETRAIN_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache',
                                                               'retrain')


def download(url: str, path: str) -> str:
    """Fetches `url` to `path` unless it is already there; ToolError (one line) when offline."""
    if os.path.isfile(path):
        return path
    fileio.make_parent_dirs(path)
    temp = f'{path}.part'
    logging.info('Downloading %s to %s', url, path)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(temp, 'wb') as out:
            total = int(response.headers.get('Content-Length') or 0)
            progress = Progress(f'Downloading {os.path.basename(path)}', total // CHUNK_BYTES,
                                unit='MiB')
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                out.write(chunk)
                progress.update(1)
            progress.close()
        os.replace(temp, path)
    except (urllib.error.URLError, OSError) as e:
        if os.path.exists(temp):
            os.remove(temp)
        reason = getattr(e, 'reason', None) or e
        raise ToolError(f'cannot download {url} ({reason}); place {os.path.basename(path)} '
                        f'at {path} and run again') from None
    return path


def extract(archive: str, directory: str) -> str:
    """Unpacks a .tar.gz/.tgz into `directory` once (atomically); returns `directory`."""
    if os.path.isdir(directory):
        return directory
    logging.info('Extracting %s to %s', archive, directory)
    try:
        with fileio.atomic_directory(directory) as temp:
            with tarfile.open(archive, 'r:*') as tar:
                _extract_all(tar, temp)
    except (tarfile.TarError, OSError) as e:
        raise ToolError(f'cannot extract archive {archive}: {e}') from None
    return directory


def _extract_all(tar: tarfile.TarFile, directory: str) -> None:
    """tarfile's own 'data' filter where this Python has it (3.12+, and the 3.9-3.11 patch
    releases from mid-2023); on older ones, the same refusals checked here."""
    if hasattr(tarfile, 'data_filter'):
        tar.extractall(directory, filter='data')
    else:
        extract_checked(tar, directory)


def extract_checked(tar: tarfile.TarFile, directory: str) -> None:
    """Extracts only regular files, folders and links that stay inside `directory`.

    An absolute name, a `..` that climbs out, a link pointing outside, or a device or pipe
    member makes the whole archive refused (tarfile.TarError) before anything is written.
    """
    root = os.path.realpath(directory)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    for member in tar.getmembers():
        target = os.path.join(root, member.name)
        if os.path.isabs(member.name) or not inside(target):
            raise tarfile.TarError(f'member {member.name!r} would be written outside the folder')
        if member.issym() or member.islnk():
            base = os.path.dirname(target) if member.issym() else root
            if os.path.isabs(member.linkname) or not inside(os.path.join(base, member.linkname)):
                raise tarfile.TarError(f'link {member.name!r} points outside the folder')
        elif not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f'member {member.name!r} is neither a file nor a folder')
    tar.extractall(directory)


def flower_photos() -> str:
    """TensorFlow's flower_photos, downloaded once to the cache folder; returns its image dir."""
    cache = default_cache_dir()
    archive = download(FLOWER_PHOTOS_URL, os.path.join(cache, 'flower_photos.tgz'))
    return os.path.join(extract(archive, os.path.join(cache, 'flower_photos')), 'flower_photos')
