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
    # A second run reads the remote cache instead of computing.
    before = {path: tf.io.gfile.stat(path).mtime_nsec for path in cached}
    assert np.isclose(pipeline.run(config), accuracy)
    assert {path: tf.io.gfile.stat(path).mtime_nsec for path in cached} == before
