"""The binary cache index: used while the text files are unchanged, never trusted over them."""
import glob
import json
import os
import re
import shutil
import signal
import stat

import numpy as np
import pytest

from retrain.cache import bottleneck_files
from retrain.cache.binary_index import CacheIndex, checksum
from retrain.data import image_lists
from retrain.features.hub_module import hub_cache_suffix
from retrain.tasks.single_label import examples_of

from conftest import mean_colour_extractor, retrain_args, run_module

SUFFIX = '_https~tfhub.dev~test~1'
SIZE = 3


def _write_text_cache(root: str, count: int) -> list:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(root, f'class{i % 2}', f'img{i}.jpg{SUFFIX}.txt')
        bottleneck_files.write_bottleneck(path, rng.normal(size=SIZE).astype(np.float32))
        paths.append(path)
    return paths


def _text_values(paths):
    return [bottleneck_files.read_bottleneck(p, SIZE) for p in paths]


def _index_files(root: str):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, '_bottlenecks*')))


def _rewrite(manifest_path: str, manifest: dict, array_path: str, array: np.ndarray) -> None:
    """Replaces the index by another consistent one (checksum and all), as a run could write."""
    np.save(array_path, array)
    manifest['checksum'] = checksum(manifest['files'], array)
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f)


def _unmeasured(paths) -> list:
    """The image sizes of text files without images: unknown."""
    return [None] * len(paths)


def _build(root: str, paths) -> None:
    index = CacheIndex(root, SUFFIX, SIZE)
    _, stamps, _ = index.lookup(paths, _unmeasured(paths))
    index.save(paths, _text_values(paths), stamps, _unmeasured(paths))


def test_a_file_listed_twice_is_indexed_once_and_a_warm_run_writes_nothing(tmp_path):
    """make_image_classifier's split lists some images twice (training and validation): the
    index was rewritten, duplicates and all, on every run."""
    root = str(tmp_path)
    paths = _write_text_cache(root, 4)
    listed = paths + paths[1:3]
    _build(root, listed)
    manifest_path = os.path.join(root, _index_files(root)[1])
    manifest = json.load(open(manifest_path, encoding='utf-8'))
    assert [f[0] for f in manifest['files']] == [f'class{i % 2}/img{i}.jpg{SUFFIX}.txt'
                                                for i in range(4)]
    written = os.stat(manifest_path).st_mtime_ns
    index = CacheIndex(root, SUFFIX, SIZE)
    found, stamps, _ = index.lookup(listed, _unmeasured(listed))
    for got, want in zip(found, _text_values(listed)):
        np.testing.assert_array_equal(got, want)
    index.save(listed, found, stamps, _unmeasured(listed))
    assert os.stat(manifest_path).st_mtime_ns == written and len(_index_files(root)) == 2


def test_index_serves_unchanged_files_and_is_written_atomically(tmp_path):
    root = str(tmp_path)
    paths = _write_text_cache(root, 6)
    first = CacheIndex(root, SUFFIX, SIZE)
    found, stamps, _ = first.lookup(paths, _unmeasured(paths))
    assert found == [None] * 6  # No index yet.
    first.save(paths, _text_values(paths), stamps, _unmeasured(paths))
    names = _index_files(root)
    assert len(names) == 2 and names[1].endswith('.index.json') and names[0].endswith('.npy')
    manifest = json.load(open(os.path.join(root, names[1]), encoding='utf-8'))
    assert [f[0] for f in manifest['files']] == [f'class{i % 2}/img{i}.jpg{SUFFIX}.txt'
                                                for i in range(6)]

    found = CacheIndex(root, SUFFIX, SIZE).lookup(paths, _unmeasured(paths))[0]
    for got, want in zip(found, _text_values(paths)):
        np.testing.assert_array_equal(got, want)

    # A rewrite (one more file) swaps in a new array and removes the old one, and any array a
    # crash left behind, but not those of another suffix.
    other = os.path.join(root, f'_bottlenecks{SUFFIX}.x.0123456789ab.npy')
    crashed = os.path.join(root, f'_bottlenecks{SUFFIX}.0123456789ab.npy')
    for path in (other, crashed):
        np.save(path, np.zeros(1))
    paths += _write_text_cache(os.path.join(root, 'more'), 1)
    _build(root, paths)
    new_names = [n for n in _index_files(root) if n != os.path.basename(other)]
    assert len(new_names) == 2 and new_names[0] != names[0] and os.path.exists(other)
    assert len(json.load(open(os.path.join(root, new_names[1]), encoding='utf-8'))['files']) == 7


def test_changed_or_deleted_text_files_win_over_the_index(tmp_path):
    root = str(tmp_path)
    paths = _write_text_cache(root, 4)
    _build(root, paths)
    # Same size, other value, newer mtime: the text file's new content is what counts.
    with open(paths[0], encoding='utf-8') as f:
        text = f.read()
    with open(paths[0], 'w', encoding='utf-8') as f:
        f.write(text.replace('-', '+', 1) if '-' in text else '-' + text[1:])
    os.utime(paths[0], ns=(os.stat(paths[0]).st_atime_ns, os.stat(paths[0]).st_mtime_ns + 10**9))
    bottleneck_files.write_bottleneck(paths[1], np.array([7, 8, 9], np.float32))  # New size.
    os.remove(paths[2])
    found, stamps, _ = CacheIndex(root, SUFFIX, SIZE).lookup(paths, _unmeasured(paths))
    assert found[0] is None and found[1] is None and found[2] is None and stamps[2] is None
    assert found[3] is not None


def test_a_row_whose_image_changed_size_is_neither_served_nor_read(tmp_path):
    root = str(tmp_path)
    paths = _write_text_cache(root, 3)
    index = CacheIndex(root, SUFFIX, SIZE)
    _, stamps, _ = index.lookup(paths, [100, 200, 300])
    index.save(paths, _text_values(paths), stamps, [100, 200, None])
    found, _, replaced = CacheIndex(root, SUFFIX, SIZE).lookup(paths, [100, 201, 301])
    assert replaced == [False, True, False]  # The third image's size was never known.
    assert found[0] is not None and found[1] is None and found[2] is not None


def test_an_index_without_image_sizes_is_used_and_rewritten_with_them(tmp_path):
    """The previous version's index: an upgrade must not parse a large cache's text again."""
    root = str(tmp_path)
    paths = _write_text_cache(root, 3)
    index = CacheIndex(root, SUFFIX, SIZE)
    _, stamps, _ = index.lookup(paths, [100, 200, 300])
    index.save(paths, _text_values(paths), stamps, [100, 200, 300])
    array_path, manifest_path = [os.path.join(root, n) for n in _index_files(root)]
    manifest = json.load(open(manifest_path, encoding='utf-8'))
    manifest['version'], manifest['files'] = 2, [f[:3] for f in manifest['files']]
    _rewrite(manifest_path, manifest, array_path, np.load(array_path))
    older = CacheIndex(root, SUFFIX, SIZE)
    found, stamps, replaced = older.lookup(paths, [100, 201, 300])
    assert all(f is not None for f in found) and replaced == [False] * 3  # Sizes unknown.
    older.save(paths, found, stamps, [100, 201, 300])
    rewritten = json.load(open(manifest_path, encoding='utf-8'))
    assert rewritten['version'] == 3 and [f[3] for f in rewritten['files']] == [100, 201, 300]
    assert CacheIndex(root, SUFFIX, SIZE).lookup(paths, [100, 202, 300])[2] == [False, True,
                                                                                 False]


@pytest.mark.parametrize('damage', ['garbage manifest', 'missing array', 'other size',
                                    'version a list', 'deep JSON', 'array a zip file'])
def test_a_damaged_index_is_ignored_with_a_warning(tmp_path, caplog, damage):
    """The last three were tracebacks in every later run, until the index was deleted by hand;
    a missing array was ignored without a word."""
    root = str(tmp_path)
    paths = _write_text_cache(root, 3)
    _build(root, paths)
    array, manifest = [os.path.join(root, n) for n in _index_files(root)]
    if damage == 'garbage manifest':
        with open(manifest, 'w', encoding='utf-8') as f:
            f.write('{not json')
    elif damage == 'missing array':
        os.remove(array)
    elif damage == 'other size':
        np.save(array, np.zeros((3, SIZE + 1), np.float32))
    elif damage == 'version a list':
        written = json.load(open(manifest, encoding='utf-8'))
        with open(manifest, 'w', encoding='utf-8') as f:
            json.dump({**written, 'version': [written['version']]}, f)
    elif damage == 'deep JSON':
        with open(manifest, 'w', encoding='utf-8') as f:
            f.write('[' * 100000 + ']' * 100000)
    else:
        np.savez(array + '.npz', values=np.load(array))
        os.replace(array + '.npz', array)
    caplog.set_level('WARNING', logger='absl')
    found = CacheIndex(root, SUFFIX, SIZE).lookup(paths, _unmeasured(paths))[0]
    assert found == [None] * 3
    assert f'Ignoring the bottleneck index {manifest} (' in caplog.text


def _loader(image_dir: str, cache: str):
    """A function running load_or_compute on the same folders each time it is called."""
    extractor = mean_colour_extractor(SUFFIX)

    def load():
        classes = image_lists.create_image_lists(image_dir, 10, 10)
        return bottleneck_files.load_or_compute(image_dir, examples_of(classes), cache,
                                                extractor)[0]
    return load


def test_load_or_compute_builds_then_uses_the_index(tmp_path, image_dir):
    cache = str(tmp_path / 'bottlenecks')
    load = _loader(image_dir, cache)

    cold = load()
    assert len(_index_files(cache)) == 2
    texts = glob.glob(os.path.join(cache, '*', f'*{SUFFIX}.txt'))
    assert len(texts) == 90  # The text files remain the format of record.

    # Prove the warm run reads the index: poison one row of a consistent index (its text file is
    # unchanged) and see the poisoned value come back.
    array_path, manifest_path = [os.path.join(cache, n) for n in _index_files(cache)]
    manifest = json.load(open(manifest_path, encoding='utf-8'))
    array = np.load(array_path)
    array[0] = 123.0
    _rewrite(manifest_path, manifest, array_path, array)
    poisoned = os.path.join(cache, *manifest['files'][0][0].split('/'))
    warm = load()
    everything = np.concatenate([warm.features[c] for c in image_lists.CATEGORIES])
    assert (everything == 123.0).all(axis=1).sum() == 1

    # Now change that text file: the text wins, and the index is rewritten to match it.
    bottleneck_files.write_bottleneck(poisoned, np.array([0.25, 0.5, 0.75], np.float32))
    fixed = load()
    everything = np.concatenate([fixed.features[c] for c in image_lists.CATEGORIES])
    assert not (everything == 123.0).any()
    assert (everything == np.array([0.25, 0.5, 0.75], np.float32)).all(axis=1).sum() == 1
    for category in image_lists.CATEGORIES:
        np.testing.assert_array_equal(cold.labels[category], fixed.labels[category])

    # Deleting the index (or the whole cache) is always safe.
    for name in _index_files(cache):
        os.remove(os.path.join(cache, name))
    again = load()
    for category in image_lists.CATEGORIES:
        np.testing.assert_array_equal(again.features[category], fixed.features[category])
    shutil.rmtree(cache)
    recomputed = load()
    for category in image_lists.CATEGORIES:
        np.testing.assert_allclose(recomputed.features[category], cold.features[category])


def test_a_warm_split_is_a_view_of_the_mapped_index(tmp_path, image_dir):
    """Large caches are held once: a split served whole from the index is not copied."""
    cache = str(tmp_path / 'bottlenecks')
    load = _loader(image_dir, cache)

    def mapped(data):
        return [not data.features[c].flags.writeable for c in image_lists.CATEGORIES]

    cold = load()
    assert mapped(cold) == [False] * 3
    warm = load()
    assert mapped(warm) == [True] * 3
    for category in image_lists.CATEGORIES:
        np.testing.assert_array_equal(warm.features[category], cold.features[category])
        np.testing.assert_array_equal(warm.labels[category], cold.labels[category])

    # An index in another row order (an older version wrote class by class) still serves every
    # row, copied; it is rewritten in split order, and the run after that maps it.
    array_path, manifest_path = [os.path.join(cache, n) for n in _index_files(cache)]
    manifest = json.load(open(manifest_path, encoding='utf-8'))
    order = np.random.default_rng(0).permutation(len(manifest['files']))
    manifest['files'] = [manifest['files'][i] for i in order]
    _rewrite(manifest_path, manifest, array_path, np.load(array_path)[order])
    shuffled = load()
    assert mapped(shuffled) == [False] * 3
    assert _index_files(cache)[0] != os.path.basename(array_path)
    again = load()
    assert mapped(again) == [True] * 3
    for category in image_lists.CATEGORIES:
        np.testing.assert_array_equal(shuffled.features[category], cold.features[category])
        np.testing.assert_array_equal(again.features[category], cold.features[category])


def _break_index(cache: str, damage: str) -> None:
    """Damages the index in `cache` as the issue's hostile user did."""
    array_path, manifest_path = [os.path.join(cache, n) for n in _index_files(cache)]
    if damage == 'empty array':
        open(array_path, 'wb').close()
    elif damage in ('null manifest', 'list manifest'):
        with open(manifest_path, 'w', encoding='utf-8') as f:
            f.write('null' if damage == 'null manifest' else '[1, 2]')
    elif damage == 'reversed file list':  # Every row now claims another image's text file.
        manifest = json.load(open(manifest_path, encoding='utf-8'))
        manifest['files'].reverse()
        with open(manifest_path, 'w', encoding='utf-8') as f:
            json.dump(manifest, f)
    else:  # Changed in place: zeroed, or one value made nan.
        array = np.load(array_path)
        if damage == 'zeroed array':
            array[:] = 0
        else:
            array[len(array) // 2, 0] = np.nan
        np.save(array_path, array)


def _final_line(stderr: str) -> str:
    return re.search(r'Final test accuracy = .*', stderr).group(0)


@pytest.fixture(scope='module')
def seeded_reference(tmp_path_factory, tiny_module, image_dir):
    """A seeded run's output folder (its cache and a valid index in bn/) and its final line."""
    out = str(tmp_path_factory.mktemp('reference'))
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 20,
                                                 '--random_seed', '3'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(_index_files(os.path.join(out, 'bn'))) == 2
    return out, _final_line(result.stderr)


@pytest.mark.parametrize('damage', ['reversed file list', 'zeroed array', 'nan in array',
                                    'empty array', 'null manifest', 'list manifest'])
def test_a_damaged_index_is_rebuilt_and_never_serves_a_row(damage, image_dir, tmp_path):
    cache = str(tmp_path / 'bn')
    load = _loader(image_dir, cache)
    load()
    for name in _index_files(cache):  # What the text files alone give (the index is rebuilt).
        os.remove(os.path.join(cache, name))
    from_text = load()
    _break_index(cache, damage)
    after = load()
    for category in image_lists.CATEGORIES:
        np.testing.assert_array_equal(after.features[category], from_text.features[category])
        np.testing.assert_array_equal(after.labels[category], from_text.labels[category])
    rebuilt = CacheIndex(cache, SUFFIX, SIZE)  # Rewritten with the text files' values.
    assert rebuilt.values is not None and len(rebuilt.rows) == 90
    texts = np.concatenate([from_text.features[c] for c in image_lists.CATEGORIES])
    np.testing.assert_array_equal(np.sort(np.asarray(rebuilt.values), axis=0),
                                  np.sort(texts, axis=0))


def test_a_run_on_a_damaged_index_says_so_and_trains_on_the_text_files(seeded_reference,
                                                                        tiny_module, image_dir,
                                                                        tmp_path):
    reference, final_line = seeded_reference
    cache = str(tmp_path / 'bn')
    shutil.copytree(os.path.join(reference, 'bn'), cache)  # Keeps the text files' mtimes.
    _break_index(cache, 'nan in array')
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 20,
                                                 '--random_seed', '3'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    assert re.search(r'^W [-0-9]+ [0-9:.]+: Ignoring the bottleneck index .*index\.json \(.+\); '
                     r'the text files are used and the index is rebuilt$', result.stderr, re.M)
    assert '90 bottlenecks cached in' in result.stderr and '(0 from its index)' in result.stderr
    assert _final_line(result.stderr) == final_line  # The very values of the text files.


def test_an_index_that_cannot_be_written_is_a_warning_and_leaves_nothing(tiny_module, image_dir,
                                                                          tmp_path):
    """A full disk or an unwritable name while writing the manifest: the run goes on."""
    cache = tmp_path / 'bn'
    (cache / f'_bottlenecks{hub_cache_suffix(tiny_module)}.index.json').mkdir(parents=True)
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5))
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    warning = re.search(r'^W [-0-9]+ [0-9:.]+: Could not write the bottleneck index (.*) '
                        r'\((.+)\); the run goes on without it$', result.stderr, re.M)
    index = f'_bottlenecks{hub_cache_suffix(tiny_module)}.index.json'
    assert warning.group(1) == str(cache / index)
    assert '.tmp' not in warning.group(2) and 'index.json' not in warning.group(2)  # The reason.
    assert not [name for name in os.listdir(cache) if '.npy' in name]  # No orphan array.
    assert os.path.isfile(tmp_path / 'graph.pb') and os.path.isfile(tmp_path / 'labels.txt')


def test_an_index_cut_short_by_the_disk_says_why(tmp_path, caplog):
    """NumPy's write of the array failed with `6000 requested and 992 written` on a full disk;
    a limit on file sizes cuts it short the same way."""
    resource = pytest.importorskip('resource', reason='file size limits are POSIX')
    root = str(tmp_path)
    paths = _write_text_cache(root, 2000)
    index = CacheIndex(root, SUFFIX, SIZE)
    _, stamps, _ = index.lookup(paths, _unmeasured(paths))
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Else the process is killed.
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        index.save(paths, _text_values(paths), stamps, _unmeasured(paths))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert 'Could not write the bottleneck index' in caplog.text
    assert 'File too large' in caplog.text and 'requested' not in caplog.text
    assert _index_files(root) == []


def test_index_files_follow_the_umask_as_the_text_files_do(tmp_path, image_dir):
    cache = str(tmp_path / 'bottlenecks')
    old = os.umask(0o027)
    try:
        _loader(image_dir, cache)()
    finally:
        os.umask(old)
    text = glob.glob(os.path.join(cache, '*', f'*{SUFFIX}.txt'))[0]
    modes = {name: stat.S_IMODE(os.stat(os.path.join(cache, name)).st_mode)
             for name in _index_files(cache)}
    assert stat.S_IMODE(os.stat(text).st_mode) == 0o640
    assert set(modes.values()) == {0o640}, modes


def test_an_index_of_no_bottlenecks_is_written(tmp_path, caplog):
    """When no image gave a value (all unreadable), the index holds an empty array; writing it
    once failed with a TypeError (an empty view cannot be cast to bytes)."""
    root = str(tmp_path)
    paths = _write_text_cache(root, 3)
    index = CacheIndex(root, SUFFIX, SIZE)
    index.save(paths, [None] * len(paths), [None] * len(paths), _unmeasured(paths))
    assert 'Could not write the bottleneck index' not in caplog.text and _index_files(root)
    values, _, replaced = CacheIndex(root, SUFFIX, SIZE).lookup(paths, _unmeasured(paths))
    assert values == [None] * len(paths) and not any(replaced)
    assert 'Ignoring the bottleneck index' not in caplog.text
