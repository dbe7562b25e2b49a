"""A graph is code: graphs with ops that touch files are refused before anything runs."""
import os

import numpy as np
import pytest

import graph_builders as gb
from compat import classifier, safety
from conftest import run_module, write_image


@pytest.fixture
def photo(tmp_path) -> str:
    path = str(tmp_path / 'photo.jpg')
    write_image(path, (90, 120, 200), np.random.default_rng(0))
    return path


def test_allowlist_passes_every_generation():
    for build in (gb.inception_like, gb.poets_like, gb.hub_like):
        assert safety.unsafe_ops(build()) == []


def test_write_file_in_the_function_library_is_found(tmp_path):
    graph_def = gb.writing_file_in_function(str(tmp_path / 'pwned.txt'))
    assert 'WriteFile' not in {node.op for node in graph_def.node}
    assert safety.unsafe_ops(graph_def) == ['WriteFile']


@pytest.mark.parametrize('build', [gb.writing_file, gb.writing_file_in_function])
def test_library_refuses_and_writes_nothing(tmp_path, photo, build):
    target = str(tmp_path / 'pwned.txt')
    path = gb.save(build(target), str(tmp_path / 'graph.pb'))
    with pytest.raises(safety.UnsafeGraphError, match=r'refusing to run .*graph\.pb: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)
    # The graph really would write: allowed explicitly, running it creates the file.
    model = classifier.load(path, allow_unsafe_ops=True)
    model.classify([open(photo, 'rb').read()])
    assert os.path.exists(target)


def test_label_image_refuses_by_name_and_writes_nothing(tmp_path, photo):
    target = str(tmp_path / 'pwned.txt')
    graph = gb.save(gb.writing_file(target), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    result = run_module('label_image', '--graph', graph, '--labels', labels, photo)
    assert result.returncode == 1
    assert result.stdout == ''
    errors = [line for line in result.stderr.splitlines() if line.startswith('label_image')]
    assert len(errors) == 1 and 'WriteFile' in errors[0] and '--allow_unsafe_ops' in errors[0]
    assert 'Traceback' not in result.stderr
    assert not os.path.exists(target)
    allowed = run_module('label_image', '--graph', graph, '--labels', labels, photo,
                         '--allow_unsafe_ops')
    assert allowed.returncode == 0, allowed.stderr
    assert os.path.exists(target)


def test_tflite_with_a_file_writing_tensorflow_op_is_refused(tmp_path):
    target = str(tmp_path / 'pwned.txt')
    path = gb.writing_file_tflite(str(tmp_path / 'model.tflite'), target)
    with pytest.raises(safety.UnsafeGraphError,
                       match=r'refusing to run .*model\.tflite: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)


def test_saved_model_whose_signature_writes_a_file_is_refused(tmp_path, photo):
    target = str(tmp_path / 'pwned.txt')
    path = gb.writing_file_saved_model(str(tmp_path / 'saved'), target)
    with pytest.raises(safety.UnsafeGraphError, match=r'refusing to run .*saved: .*WriteFile'):
        classifier.load(path)
    assert not os.path.exists(target)
    classifier.load(path, allow_unsafe_ops=True).classify([open(photo, 'rb').read()])
    assert os.path.exists(target)
