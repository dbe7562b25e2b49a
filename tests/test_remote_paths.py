"""Remote file systems: the whole pipeline on tf.io.gfile paths (`ram://` stands in for gs://)."""
import os

import numpy as np
import tensorflow as tf

from retrain import pipeline
from retrain.config import RetrainConfig


def _copy_tree_to(local: str, remote: str) -> None:
    for folder, _, files in os.walk(local):
        target = remote + '/' + os.path.relpath(folder, local).replace(os.sep, '/')
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f'{target}/{name}', overwrite=True)


def test_image_cache_and_output_dirs_on_a_remote_file_system(image_dir, tiny_module):
    root = 'ram://remote_run'
    _copy_tree_to(image_dir, f'{root}/images')
    config = RetrainConfig(
        image_dir=f'{root}/images', bottleneck_dir=f'{root}/bottlenecks',
        output_graph=f'{root}/out/graph.pb', output_labels=f'{root}/out/labels.txt',
        summaries_dir='', tfhub_module=tiny_module, how_many_training_steps=60,
        learning_rate=0.5, random_seed=2, saved_model_dir='')
    accuracy = pipeline.run(config)
    assert accuracy >= 0.8
    with tf.io.gfile.GFile(f'{root}/out/labels.txt') as f:
        assert f.read() == 'blue\ngreen\nred\n'
    cached = tf.io.gfile.glob(f'{root}/bottlenecks/red/*.txt')
    assert len(cached) == 30
    graph_def = tf.compat.v1.GraphDef()
    with tf.io.gfile.GFile(f'{root}/out/graph.pb', 'rb') as f:
        graph_def.ParseFromString(f.read())
    assert any(node.name == 'final_result' for node in graph_def.node)
    # A second run reads the remote cache instead of computing. (ram:// reports a modification
    # time of 0 for every file, so the proof is in the contents.) One file is planted with its
    # values in another spelling than the tool writes: a run that recomputed or rewrote the cache
    # would put the tool's own spelling back.
    marker = cached[0]
    with tf.io.gfile.GFile(marker) as f:
        values = [float(v) for v in f.read().split(',')]
    tf.io.gfile.remove(marker)  # ram:// writes over a file without truncating it.
    with tf.io.gfile.GFile(marker, 'w') as f:
        f.write(','.join(f'{v:.12f}' for v in values))
    before = {path: _read(path) for path in cached}
    assert np.isclose(pipeline.run(config), accuracy)
    assert {path: _read(path) for path in cached} == before
    assert before[marker].count('.') == len(values) and '0000,' in before[marker]


def _read(path: str) -> str:
    with tf.io.gfile.GFile(path) as f:
        return f.read()
