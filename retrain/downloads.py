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

from retrain import fileio
from retrain.errors import RetrainError
from retrain.progress import Progress

FLOWER_PHOTOS_URL = ('https://storage.googleapis.com/download.tensorflow.org/example_images/'
                     'flower_photos.tgz')
CHUNK_BYTES = 1 << 20


def default_cache_dir() -> str:
    return os.environ.get('RETRAIN_CACHE_DIR') or os.path.join(os.path.expanduser('~'), '.cache',
                                                               'retrain')


def download(url: str, path: str) -> str:
    """Fetches `url` to `path` unless it is already there; RetrainError (one line) when offline."""
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
        raise RetrainError(f'cannot download {url} ({reason}); place {os.path.basename(path)} '
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
                tar.extractall(temp, filter='data')
    except (tarfile.TarError, OSError) as e:
        raise RetrainError(f'cannot extract archive {archive}: {e}') from None
    return directory


def flower_photos() -> str:
    """TensorFlow's flower_photos, downloaded once to the cache folder; returns its image dir."""
    cache = default_cache_dir()
    archive = download(FLOWER_PHOTOS_URL, os.path.join(cache, 'flower_photos.tgz'))
    return os.path.join(extract(archive, os.path.join(cache, 'flower_photos')), 'flower_photos')
