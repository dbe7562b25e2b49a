"""retrain.export.saved_model: the signatures of a SavedModel that `python -m retrain` wrote."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import label_image_blocks, retrain_args, run_module


@pytest.fixture(scope='module')
def saved_model(tmp_path_factory, tiny_module, image_dir) -> str:
    out = str(tmp_path_factory.mktemp('retrained'))
    result = run_module('retrain', *retrain_args(image_dir, tiny_module, out, 10,
                                                 '--saved_model_dir', os.path.join(out, 'sm')))
    assert result.returncode == 0, result.stderr[-3000:]
    return os.path.join(out, 'sm')


def test_an_empty_batch_gives_empty_results_on_both_signatures(saved_model):
    """No images once gave 'Tried to stack elements of an empty list' from serving_bytes."""
    loaded = tf.saved_model.load(saved_model)
    default = loaded.signatures['serving_default']
    _, inputs = default.structured_input_signature
    height, width = inputs['image'].shape[1:3]
    prediction = default(image=tf.zeros([0, height, width, 3]))['prediction']
    assert prediction.shape == (0, 3)
    answer = loaded.signatures['serving_bytes'](image_bytes=tf.constant([], tf.string))
    assert answer['scores'].shape == (0, 3) and answer['classes'].shape == (0, 3)
    assert answer['scores'].dtype == tf.float32 and answer['classes'].dtype == tf.string
    assert default(image=tf.zeros([0, height, width, 3]))['unknown'].shape == (0,)
    assert answer['unknown_score'].shape == (0,) and answer['unknown'].dtype == tf.bool


def test_both_signatures_judge_as_the_frozen_graph(saved_model, image_dir, tmp_path):
    noise = str(tmp_path / 'noise.png')
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8)
    tf.io.write_file(noise, tf.io.encode_png(pixels))
    images = [os.path.join(image_dir, 'red', 'red_001.jpg'), noise]
    graph = os.path.join(os.path.dirname(saved_model), 'graph.pb')
    labels = os.path.join(os.path.dirname(saved_model), 'labels.txt')
    answers = [json.loads(run_module('label_image', '--graph', model, '--labels', labels,
                                     '--json', *images).stdout) for model in (graph, saved_model)]
    for frozen, saved in zip(*answers):
        assert frozen['unknown'] == saved['unknown']
        assert saved['unknown_score'] == pytest.approx(frozen['unknown_score'], 1e-4, 1e-3)
    contents = tf.constant([tf.io.read_file(path).numpy() for path in images])
    by_bytes = tf.saved_model.load(saved_model).signatures['serving_bytes'](image_bytes=contents)
    np.testing.assert_allclose(by_bytes['unknown_score'].numpy(),
                               [a['unknown_score'] for a in answers[0]], 1e-4, 1e-3)
    assert by_bytes['unknown'].numpy().tolist() == [a['unknown'] for a in answers[0]]

def test_label_image_reads_the_guarded_scores_as_probabilities(saved_model, image_dir):
    """The empty-batch guard (an If) hides no Softmax: no note that scores are not
    probabilities."""
    image = os.path.join(image_dir, 'red', 'red_001.jpg')
    labels = os.path.join(os.path.dirname(saved_model), 'labels.txt')
    result = run_module('label_image', '--graph', saved_model, '--labels', labels, image)
    assert result.returncode == 0 and result.stderr == '', result.stderr[-3000:]
    assert label_image_blocks(result.stdout)[image][0][0] == 'red'
