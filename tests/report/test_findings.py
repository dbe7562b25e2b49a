"""Duplicates, split leaks and suspected label errors found in real files and feature arrays."""
import os
import shutil
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.report import findings

from conftest import make_image_folder


def _reencode(source: str, target: str, quality: int) -> None:
    pixels = tf.io.decode_image(tf.io.read_file(source), channels=3)
    tf.io.write_file(target, tf.io.encode_jpeg(pixels, quality=quality))


def _pixel_features(paths):
    """Unit-length, mean-centred 8x8 thumbnails: features that tell distinct images apart."""
    images = [tf.image.resize(tf.io.decode_image(tf.io.read_file(p), channels=3,
                                                 expand_animations=False), (8, 8)).numpy()
              for p in paths]
    x = np.array(images, np.float32).reshape(len(paths), -1)
    x -= x.mean(axis=0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def photos(tmp_path):
    """Distinct noise images in three classes, with planted copies."""
    root = make_image_folder(str(tmp_path / 'images'), per_class=6, shape=(384, 384),
                             colours={name: (128, 128, 128) for name in 'abc'})
    shutil.copy(os.path.join(root, 'a', 'a_000.jpg'), os.path.join(root, 'a', 'a_000_copy.jpg'))
    shutil.copy(os.path.join(root, 'b', 'b_001.jpg'), os.path.join(root, 'c', 'from_b.jpg'))
    _reencode(os.path.join(root, 'c', 'c_002.jpg'), os.path.join(root, 'c', 'c_002_q60.jpg'), 60)
    return root


def _paths(root):
    return sorted(os.path.join(root, c, name) for c in sorted(os.listdir(root))
                  for name in os.listdir(os.path.join(root, c)))


def _name(path):
    return os.path.basename(path)


def test_exact_duplicates_are_the_files_with_the_same_bytes(photos):
    paths = _paths(photos)
    pairs = findings.exact_duplicate_pairs(paths)
    found = sorted(sorted((_name(paths[i]), _name(paths[j]))) for i, j in pairs)
    # The re-encoded copy has other bytes: not an exact duplicate.
    assert found == [['a_000.jpg', 'a_000_copy.jpg'], ['b_001.jpg', 'from_b.jpg']]


def test_an_image_deleted_since_it_was_listed_is_nobody_s_duplicate(photos):
    paths = _paths(photos)
    os.remove(os.path.join(photos, 'a', 'a_000_copy.jpg'))  # Its bottleneck was cached.
    pairs = findings.exact_duplicate_pairs(paths)
    assert [sorted((_name(paths[i]), _name(paths[j]))) for i, j in pairs] == [
        ['b_001.jpg', 'from_b.jpg']]


def test_groups_hold_exact_and_reencoded_copies(photos):
    paths = _paths(photos)
    groups = findings.duplicate_groups(_pixel_features(paths), paths)
    found = {tuple(sorted(_name(paths[i]) for i in g.members)): g.exact for g in groups}
    assert found == {('a_000.jpg', 'a_000_copy.jpg'): True, ('b_001.jpg', 'from_b.jpg'): True,
                     ('c_002.jpg', 'c_002_q60.jpg'): False}


def test_a_near_group_counts_the_byte_copies_it_holds(photos):
    """Six copies of one photo joined with a re-encoded one were a near group only: the log's
    exact count said 0, as though no file had a copy."""
    shutil.copy(os.path.join(photos, 'c', 'c_002.jpg'), os.path.join(photos, 'c', 'copy.jpg'))
    paths = _paths(photos)
    groups = findings.duplicate_groups(_pixel_features(paths), paths)
    found = {tuple(sorted(_name(paths[i]) for i in g.members)): (g.exact, g.same_bytes)
             for g in groups}
    assert found == {('a_000.jpg', 'a_000_copy.jpg'): (True, 2),
                     ('b_001.jpg', 'from_b.jpg'): (True, 2),
                     ('c_002.jpg', 'c_002_q60.jpg', 'copy.jpg'): (False, 2)}


def test_a_file_listed_twice_is_not_its_own_duplicate(photos):
    """make_image_classifier's training and validation splits share some files."""
    paths = _paths(photos)
    twice = [p for p in paths if _name(p) in ('a_001.jpg', 'c_002.jpg')]
    listed = paths + twice
    groups = findings.duplicate_groups(_pixel_features(listed), listed)
    found = {tuple(sorted(_name(listed[i]) for i in g.members)): g.exact for g in groups}
    assert found == {('a_000.jpg', 'a_000_copy.jpg'): True, ('b_001.jpg', 'from_b.jpg'): True,
                     ('c_002.jpg', 'c_002_q60.jpg'): False}
    assert all(i < len(paths) for g in groups for i in g.members)


def _files(folder, contents):
    """Paths of files `0.jpg`, `1.jpg`... in `folder` holding `contents` (images or not: only
    their bytes are compared)."""
    paths = [str(folder / f'{k}.jpg') for k in range(len(contents))]
    for path, data in zip(paths, contents):
        with open(path, 'wb') as f:
            f.write(data)
    return paths


def _groups_and_peak(unit, paths):
    """duplicate_groups of the rows of `unit` made unit-length, and the peak of the memory that
    Python allocated meanwhile (NumPy's arrays included)."""
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    tracemalloc.start()
    try:
        return findings.duplicate_groups(unit, paths), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_thousands_of_copies_of_one_image_cost_no_pair_each(tmp_path):
    """A placeholder image repeated through a scraped set: 3,000 copies among 20,000 images
    made 4.5 million pairs (2.7 GB, 14 s); copies are now left out of the pair search."""
    rng = np.random.default_rng(0)
    paths = _files(tmp_path, [b'placeholder' if k % 2 else rng.bytes(32) for k in range(6000)])
    unit = rng.standard_normal((len(paths), 32)).astype(np.float32)
    unit[1::2] = unit[1]
    unit[2] = unit[1] + 0.01  # A near-duplicate of the placeholder (re-encoded, say).
    groups, peak = _groups_and_peak(unit, paths)
    assert [g.members for g in groups] == [[1, 2] + list(range(3, 6000, 2))]
    assert not groups[0].exact and 0.99 < groups[0].similarity < 1
    assert peak < 64 * 2**20, peak  # Blocks of similarities; 4.5 million pairs took 90 MB alone.


def test_a_photo_re_encoded_a_thousand_times_is_grouped_in_arrays(tmp_path):
    """Near-identical images that are not byte-identical still make m^2 / 2 pairs; a Python
    dict of them peaked at 212 MB here, arrays take half."""
    rng = np.random.default_rng(0)
    paths = _files(tmp_path, [rng.bytes(16) for _ in range(2000)])
    unit = rng.standard_normal((len(paths), 64)).astype(np.float32)
    unit[:1500] = unit[0] + rng.normal(0, 0.05, (1500, 64))
    groups, peak = _groups_and_peak(unit, paths)
    assert [g.members for g in groups] == [list(range(1500))] and not groups[0].exact
    assert peak < 150 * 2**20, peak


def _planted_vectors(n, copies, dim=64, seed=0):
    """Non-negative clustered vectors (like bottlenecks) and `copies` noisy copies of some."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(1.0, 1.0, (20, dim))
    x = np.maximum(centres[rng.integers(20, size=n)] + rng.normal(0, 0.8, (n, dim)), 0)
    originals = rng.choice(n, copies, replace=False)
    noisy = x[originals] + rng.normal(0, 0.1, (copies, dim))
    x = np.concatenate([x, noisy]).astype(np.float32)
    planted = {(int(o), n + k) for k, o in enumerate(originals)}
    return x / np.linalg.norm(x, axis=1, keepdims=True), planted


def _pairs(unit):
    i, j, cosine = findings.near_duplicate_pairs(unit, 0.97)
    assert (cosine >= 0.97).all()
    return {(int(a), int(b)) for a, b in zip(i, j)}


def test_near_duplicates_every_pair_compared_up_to_the_limit():
    unit, planted = _planted_vectors(600, 15)
    brute = unit @ unit.T
    expected = {(a, b) for a, b in zip(*np.nonzero(np.triu(brute, 1) >= 0.97))}
    assert planted <= expected
    assert _pairs(unit) == expected


def test_near_duplicates_beyond_the_limit_are_found_in_buckets(monkeypatch):
    monkeypatch.setattr(findings, 'EXACT_SEARCH_LIMIT', 1000)
    monkeypatch.setattr(findings, 'BUCKET_SIZE', 250)
    unit, planted = _planted_vectors(4000, 40)
    brute = unit @ unit.T
    expected = {(a, b) for a, b in zip(*np.nonzero(np.triu(brute, 1) >= 0.97))}
    found = _pairs(unit)
    assert found <= expected  # Never a pair below the threshold.
    assert len(found & planted) >= 0.9 * len(planted)


def _clusters(per_class=60, classes=4, dim=32, seed=1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim))
    labels = np.repeat(np.arange(classes), per_class)
    x = (centres[labels] + rng.normal(0, 0.45, (len(labels), dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_moved_images_are_the_first_suspects():
    unit, labels = _clusters()
    given = labels.copy()
    moved = np.array([3, 70, 130, 200, 15, 150])
    given[moved] = (labels[moved] + 1) % 4
    probabilities = findings.out_of_fold_probabilities(unit, given, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    issues = findings.label_issues(probabilities, given)
    assert {i.index for i in issues[:len(moved)]} == set(moved)
    assert all(i.suggested == labels[i.index] for i in issues[:len(moved)])
    assert len(issues) <= 2 * len(moved)
    confidence = [i.given_probability for i in issues]
    assert confidence == sorted(confidence)


def test_find_names_leaks_and_conflicts(photos):
    paths = _paths(photos)
    unit = _pixel_features(paths)
    label_of = {c: k for k, c in enumerate(sorted(os.listdir(photos)))}
    labels = np.array([label_of[os.path.basename(os.path.dirname(p))] for p in paths])
    # The original of the exact copy within 'a' is a test image: a leak into training.
    split = ['testing' if _name(p) == 'a_000.jpg' else 'training' for p in paths]
    data = Bottlenecks(
        {s: unit[[k for k, t in enumerate(split) if t == s]] for s in
         ('training', 'validation', 'testing')},
        {s: labels[[k for k, t in enumerate(split) if t == s]] for s in
         ('training', 'validation', 'testing')},
        {s: [p for p, t in zip(paths, split) if t == s] for s in
         ('training', 'validation', 'testing')})
    found = findings.find(data, 3)
    spans = {tuple(sorted(_name(found.paths[i]) for i in g.members)):
             (found.spans_splits(g), found.spans_classes(g)) for g in found.duplicates}
    assert spans == {('a_000.jpg', 'a_000_copy.jpg'): (True, False),
                     ('b_001.jpg', 'from_b.jpg'): (False, True),
                     ('c_002.jpg', 'c_002_q60.jpg'): (False, False)}
