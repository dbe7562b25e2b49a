"""A consolidated binary copy of the text bottleneck cache, for fast warm starts.

Reading tens of thousands of small text files and parsing their decimals takes minutes; one
float32 array takes a fraction of a second. Beside the text files of each (bottleneck_dir, cache
suffix) we keep `_bottlenecks<suffix>.<token>.npy` (the values, [n, D]) and
`_bottlenecks<suffix>.index.json` (the manifest: each row's text file, relative to the bottleneck
dir, with the size and mtime the text file had when the row was taken from it and the size of its
image then, and a SHA-256 checksum of that file list and the array together).

The text files stay the format of record: a row is used only while its text file still exists
with exactly the recorded size and mtime, and only from an index whose checksum proves that
list and array are as one run wrote them (no row swapped, zeroed or damaged since); any other text
file is read (or computed) as usual, and the index is rewritten afterwards. An image whose size
is no longer the recorded one was replaced under its name since: its row and its text file hold
the old photo's values, so it is computed again (the classic scripts used them; sizes, not times,
because a fresh checkout or copy gives every image a new time), even where the text file's own
time changed (a copy of the cache gives it one); an index of the
previous version, without them, is used and rewritten with them. An index that is odd
in any way is ignored with a warning and rebuilt; failing to write one is a warning too: it is
only an optimization. Deleting the index files is always safe. The array is memory-mapped, so a
large cache costs page cache rather than a second private copy. Only local bottleneck dirs get an
index (remote file systems fall back to the text files).
"""
import concurrent.futures
import hashlib
import json
import os
import re
import uuid
from typing import BinaryIO, Dict, List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from retrain.common import fileio
from retrain.common.errors import ToolError, error_summary
from retrain.common.places import is_local

_VERSION = 3
# Rows of earlier versions: [key, size, mtime], without their image's size (used as unknown, and
# rewritten with it at the end of the run, so an upgrade never reads a large cache's text again).
_ROW_FIELDS = {2: 3, _VERSION: 4}
_PREFIX = '_bottlenecks'
_CHECKSUM_CHUNK = 16 << 20  # Bytes hashed per thread task (hashlib releases the GIL).
# (size in bytes, mtime in ns) of a text file; None when it does not exist.
Stamp = Optional[Tuple[int, int]]
_UNKNOWN = -1  # The recorded size of an image that could not be measured (a remote one).


def stamp(path: str) -> Stamp:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def checksum(files: list, values: np.ndarray) -> str:
    """SHA-256 of the manifest's file list and the array's bytes, which binds each row to its
    entry. The array is hashed in chunks on threads: a warm start pays it on every run."""
    data = _raw(values)
    chunks = [data[i:i + _CHECKSUM_CHUNK] for i in range(0, len(data), _CHECKSUM_CHUNK)]
    total = hashlib.sha256(json.dumps(files, separators=(',', ':')).encode('utf-8'))
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for digest in pool.map(lambda chunk: hashlib.sha256(chunk).digest(), chunks):
            total.update(digest)
    return total.hexdigest()


class CacheIndex:
    """The index of one (bottleneck_dir, suffix): which rows are still valid, and rewriting it."""

    def __init__(self, bottleneck_dir: str, suffix: str, size: int):
        self.root = bottleneck_dir
        self.size = size
        self.enabled = is_local(bottleneck_dir)
        self.manifest_path = os.path.join(bottleneck_dir, f'{_PREFIX}{suffix}.index.json')
        self.array_prefix = f'{_PREFIX}{suffix}.'
        self.array_name = ''
        # key -> (size, mtime_ns, row, image size in bytes)
        self.rows: Dict[str, Tuple[int, int, int, int]] = {}
        self.values: Optional[np.ndarray] = None
        self._served = 0
        self._in_order = False  # Were the rows served those of the index, in its order?
        self._current = False  # Was the index loaded of this version (else it is rewritten)?
        self._prefix = os.path.join(bottleneck_dir, '')
        if self.enabled:
            self._load()

    def key(self, path: str) -> str:
        """`path` relative to the bottleneck dir, with `/` on every system."""
        relative = (path[len(self._prefix):] if path.startswith(self._prefix)
                    else os.path.relpath(path, self.root))
        return relative.replace(os.sep, '/')

    def holds(self, path: str) -> bool:
        """Whether the index has a row of the text file `path` (valid or not)."""
        return self.key(path) in self.rows

    def _load(self) -> None:
        try:
            with open(self.manifest_path, 'rb') as f:
                manifest = json.loads(f.read().decode('utf-8'))
            version = manifest.get('version') if isinstance(manifest, dict) else None
            if isinstance(version, int) and version not in _ROW_FIELDS:
                return  # Another release's index: rebuilt without fuss.
            name, values, rows = self._validate(manifest)
            self._current = version == _VERSION
        except FileNotFoundError:  # No index yet (its array missing is a ValueError).
            return
        except Exception as e:  # noqa: BLE001  Odd in any way (module doc): json and np.load
            logging.warning(    # raise what they will (RecursionError, EOFError ...).
                'Ignoring the bottleneck index %s (%s); the text files are used and the index '
                'is rebuilt', self.manifest_path, error_summary(e))
            return
        self.array_name, self.values, self.rows = name, values, rows

    def _validate(self, manifest) -> Tuple[str, np.ndarray,
                                           Dict[str, Tuple[int, int, int, int]]]:
        """The array name, mapped array and rows of a manifest; ValueError for anything odd."""
        if not isinstance(manifest, dict):
            raise ValueError('the manifest is not a JSON object')
        name, files = manifest.get('array'), manifest.get('files')
        if not isinstance(manifest.get('version'), int):  # Other numbers: _load's early out.
            raise ValueError(f'bad version {manifest.get("version")!r}')
        if manifest.get('size') != self.size:
            raise ValueError(f'bottleneck size {manifest.get("size")!r}, not {self.size}')
        if not isinstance(name, str) or not re.fullmatch(
                re.escape(self.array_prefix) + '[0-9a-f]{12}[.]npy', name):
            raise ValueError(f'bad array name {name!r}')
        if not isinstance(files, list) or not all(
                isinstance(f, list) and len(f) == _ROW_FIELDS[manifest['version']]
                and isinstance(f[0], str)
                and all(isinstance(n, int) for n in f[1:]) for f in files):
            raise ValueError('bad file list')
        # A plain ndarray over the mapping: indexing a np.memmap row costs 50x more.
        if not os.path.isfile(os.path.join(self.root, name)):
            raise ValueError(f'its array {name} is missing')
        values = np.load(os.path.join(self.root, name), mmap_mode='r')
        if not isinstance(values, np.ndarray):  # A zip file loads as an NpzFile.
            raise ValueError(f'{name} is not a NumPy array file')
        values = values.view(np.ndarray)
        if values.dtype != np.float32 or values.shape != (len(files), self.size):
            raise ValueError(f'array {values.dtype}{list(values.shape)} does not match the '
                             'manifest')
        if manifest.get('checksum') != checksum(files, values):
            raise ValueError('checksum mismatch: the array or the file list changed')
        return name, values, {key: (size, mtime, row, *(image or [_UNKNOWN]))
                              for row, (key, size, mtime, *image) in enumerate(files)}

    def lookup(self, paths: Sequence[str], image_sizes: Sequence[Optional[int]]
               ) -> Tuple[List[Optional[np.ndarray]], List[Stamp], List[bool]]:
        """For each text cache path: its indexed values if the file is unchanged and its image
        still has the recorded size (None where unknown), its stamp, and whether its image was
        replaced since (module doc: then neither the row nor the text file is to be used).

        Stamps are taken before anything reads the files, so a file changed after this moment
        gets a stamp that no longer matches and is read again next time.
        """
        stamps = [stamp(p) for p in paths] if self.enabled else [None] * len(paths)
        found: List[Optional[np.ndarray]] = [None] * len(paths)
        replaced = [False] * len(paths)
        served_rows = []
        if self.values is not None:
            for i, (path, current, image) in enumerate(zip(paths, stamps, image_sizes)):
                record = self.rows.get(self.key(path)) if current else None
                if not record:
                    continue
                if image is not None and record[3] not in (_UNKNOWN, image):
                    replaced[i] = True  # Whatever the text file's time: a copy of the cache
                    continue            # gives every file a new one.
                if record[:2] != current:
                    continue
                found[i] = self.values[record[2]]
                served_rows.append(record[2])
        distinct = list(dict.fromkeys(served_rows))  # An image may be listed twice (its split
        self._served = len(distinct)                  # for make_image_classifier overlaps).
        self._in_order = distinct == list(range(len(distinct)))
        return found, stamps, replaced

    def rows_as_slice(self, rows: Sequence[np.ndarray]) -> Optional[np.ndarray]:
        """`rows` (from `lookup`) as one slice of the mapped index, when they are consecutive
        rows of it: the bottlenecks of a split then stay on disk, mapped, and are not copied."""
        if self.values is None or not rows or any(row.base is not self.values for row in rows):
            return None
        stride = self.values.strides[0]
        offset = rows[0].ctypes.data - self.values.ctypes.data
        if any(row.ctypes.data != rows[0].ctypes.data + k * stride for k, row in enumerate(rows)):
            return None
        start = offset // stride
        return self.values[start:start + len(rows)]

    def save(self, paths: Sequence[str], values: Sequence[Optional[np.ndarray]],
             stamps: Sequence[Stamp], image_sizes: Sequence[Optional[int]]) -> None:
        """Rewrites the index unless it already holds exactly these files, in this version.

        `values[i]` must be the content of `paths[i]` as it was at `stamps[i]`, computed from an
        image of `image_sizes[i]` bytes (entries without values or stamps are left out). The
        array is written first under a new name, then the manifest is swapped in atomically,
        then the old array is removed.
        """
        if not self.enabled:
            return
        unique: Dict[str, Tuple[str, np.ndarray, Tuple[int, int], int]] = {}  # Each file once.
        for p, v, s, image in zip(paths, values, stamps, image_sizes):
            if v is not None and s is not None:
                unique.setdefault(p, (p, v, s, _UNKNOWN if image is None else image))
        chosen = list(unique.values())
        if self._current and self._in_order and self._served == len(self.rows) == len(chosen):
            return
        array = np.zeros((len(chosen), self.size), np.float32)
        for row, (_, v, _, _) in enumerate(chosen):
            array[row] = v
        name = f'{self.array_prefix}{uuid.uuid4().hex[:12]}.npy'
        files = [[self.key(p), *s, image] for p, _, s, image in chosen]
        try:
            self._write_array(name, array)
            fileio.atomic_write(self.manifest_path, json.dumps({
                'version': _VERSION, 'size': self.size, 'array': name,
                'checksum': checksum(files, array), 'files': files}))
        except (OSError, ToolError) as e:  # A full disk, a read-only cache: run on without.
            reason = (fileio.failure_reason(e) if isinstance(e, OSError) else  # Not the temporary.
                      str(e).replace(f'cannot write {self.manifest_path}: ', ''))
            logging.warning('Could not write the bottleneck index %s (%s); the run goes on '
                            'without it', self.manifest_path, reason)
            _remove(os.path.join(self.root, name))
            return
        self.values, self.array_name = None, name
        self._remove_old_arrays()
        logging.info('Wrote the bottleneck index %s (%d bottlenecks)', self.manifest_path,
                     len(chosen))

    def _remove_old_arrays(self) -> None:
        """Removes this suffix's arrays other than the current one (even ones a crash left)."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        for name in names:
            token = name[len(self.array_prefix):-len('.npy')]
            if (name.startswith(self.array_prefix) and name.endswith('.npy')
                    and name != self.array_name and re.fullmatch('[0-9a-f]{12}', token)):
                _remove(os.path.join(self.root, name))

    def _write_array(self, name: str, array: np.ndarray) -> None:
        os.makedirs(self.root, exist_ok=True)
        temp = os.path.join(self.root, f'.{name}.tmp')
        try:
            with open(temp, 'xb') as f:  # Mode 0666 less the umask, as the text files get.
                _save_array(f, array)
            os.replace(temp, os.path.join(self.root, name))
        except BaseException:
            _remove(temp)
            raise


def _save_array(f: BinaryIO, array: np.ndarray) -> None:
    """np.save's file, written by Python: np.save writes a file's data with C's fwrite, whose
    failure says `48640 requested and 22496 written`, not that the disk is full."""
    array = np.ascontiguousarray(array)  # Its header then says C order, as its data is.
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    f.write(_raw(array))


def _raw(array: np.ndarray) -> memoryview:
    """The bytes of `array` in C order, not copied where it is C-contiguous; an empty array's
    too (memoryview's cast refuses a view with a 0 in its shape)."""
    return memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:  # Already gone, or still mapped by a reader (Windows): harmless.
        pass
