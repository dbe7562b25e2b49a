"""Old client code of every generation runs unchanged on a graph made by `python -m retrain`.

Each generation imported the graph with tf.compat.v1 (with or without name='') and called
sess.run('final_result:0', {entry: value}) with its own entry point and preprocessing; all of
them must agree with each other and with what label_image's library computes.
"""
import numpy as np
import pytest

from compat import classifier

import graph_builders as gb

SIZE = 32  # The tiny module's input size.
ENTRY_POINTS = [  # (feed, mean, std) as the clients of each generation did it.
    ('DecodeJpeg/contents:0', 0.0, 255.0),  # Inception era: encoded bytes.
    ('Mul:0', 128.0, 128.0),                # Inception era, decoded by the client.
    ('input:0', 128.0, 128.0),              # Poets era.
    ('Placeholder:0', 0.0, 255.0),          # TF Hub era.
]


@pytest.fixture(scope='module')
def retrained(tmp_path_factory, tiny_module, image_dir):
    return gb.retrained(tmp_path_factory, tiny_module, image_dir)


@pytest.mark.parametrize('name', ['', None], ids=['name=empty', 'default-import-scope'])
def test_every_entry_point_answers_old_clients_alike(retrained, image_dir, name):
    graph, _ = retrained
    images = gb.image_paths(image_dir)[::15]
    model = classifier.load(graph)
    assert model.spec.tensor == 'module_input:0'  # Ours: the model's input, past conversions.
    reference = model.classify([open(path, 'rb').read() for path in images])
    for feed, mean, std in ENTRY_POINTS:
        scores = np.concatenate([gb.classic_run(graph, path, feed, mean, std, SIZE, name)
                                 for path in images])
        np.testing.assert_allclose(scores, reference, atol=1e-4, err_msg=feed)
    # Not all the same answer, or agreement would prove nothing.
    assert len({int(np.argmax(row)) for row in reference}) == 3
