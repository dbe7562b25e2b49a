"""--random_seed: two runs on the same data give the same logs and the same graph, bit for bit."""
import concurrent.futures
import os
import re

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config as tf_framework_config

from compat.graphs import graph_function
from retrain import pipeline
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.data import image_io
from retrain.features.graph_files import load_graph_def
from retrain.train.loop import train

from conftest import retrain_args, run_module

# The numbers of every accuracy and cross-entropy line, without the timestamps.
_LOGGED = re.compile(r'((?:Fine-tune step|Step) \d+: .*|Final test accuracy.*|Fine-tuned .*)$')


def _retrain(work: str, image_dir: str, module: str, *extra: str):
    os.makedirs(work, exist_ok=True)
    return run_module(
        'retrain', *retrain_args(image_dir, module, work, 12),
        '--eval_step_interval', '4', '--learning_rate', '0.3',
        '--train_batch_size', '16', '--validation_batch_size', '8',
        '--flip_left_right', '--random_crop', '10', '--random_scale', '10',
        '--random_brightness', '10', '--fine_tune_steps', '3', *extra)


def _logged(process) -> list:
    assert process.returncode == 0, process.stderr[-3000:]
    lines = [m.group(1) for line in process.stderr.splitlines() if (m := _LOGGED.search(line))]
    assert any('Validation accuracy' in line for line in lines), process.stderr[-3000:]
    return lines


def _scores(work: str, image_dir: str) -> np.ndarray:
    classify = graph_function(load_graph_def(os.path.join(work, 'graph.pb')),
                              ['Placeholder:0'], ['final_result:0'])
    paths = sorted(os.path.join(image_dir, c, f) for c in os.listdir(image_dir)
                   for f in os.listdir(os.path.join(image_dir, c)))[::7]
    images = np.stack([image_io.load_image(p, (32, 32)) for p in paths])
    return classify(tf.constant(images))[0].numpy()


def test_same_seed_gives_identical_logs_and_graphs(tmp_path, image_dir, tiny_module):
    works = {name: str(tmp_path / name) for name in ('first', 'second', 'other')}
    seeds = {'first': '7', 'second': '7', 'other': '8'}
    # Separate caches: the second run computes its bottlenecks too instead of reading the first's.
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = dict(zip(works, pool.map(
            lambda name: _retrain(works[name], image_dir, tiny_module, '--random_seed',
                                  seeds[name]), works)))
    first, second, other = (_logged(runs[name]) for name in works)
    assert first == second
    assert any(line.startswith('Fine-tune step') for line in first)
    assert other != first  # The seed is what makes them equal.
    scores = [_scores(works[name], image_dir) for name in ('first', 'second')]
    np.testing.assert_allclose(scores[0], scores[1], rtol=0, atol=1e-6)
    assert np.array_equal(scores[0], scores[1])  # In fact bit-identical.
    graphs = []
    for name in ('first', 'second'):
        with open(os.path.join(works[name], 'graph.pb'), 'rb') as f:
            graphs.append(f.read())
    assert graphs[0] == graphs[1]  # And so are the files.


def test_unseeded_training_differs_between_runs():
    rng = np.random.default_rng(0)
    features = {c: rng.normal(size=(30, 6)).astype(np.float32) for c in ('training', 'validation',
                                                                          'testing')}
    labels = {c: np.arange(30) % 3 for c in features}
    data = Bottlenecks(features, labels, {c: [''] * 30 for c in features})
    config = RetrainConfig(how_many_training_steps=5, train_batch_size=10, summaries_dir='')
    heads = [train(data, 3, config) for _ in range(2)]
    assert not np.array_equal(heads[0].weights, heads[1].weights)
    seeded = [train(data, 3, RetrainConfig(how_many_training_steps=5, train_batch_size=10,
                                           summaries_dir='', random_seed=3)) for _ in range(2)]
    assert np.array_equal(seeded[0].weights, seeded[1].weights)


def test_a_seeded_run_leaves_no_process_wide_state(tmp_path, image_dir, tiny_module):
    """A library call must not change TensorFlow for the rest of the process: op determinism
    (which makes unseeded random ops raise) is on during a seeded run only."""
    def config(name: str, **extra) -> RetrainConfig:
        work = tmp_path / name
        return RetrainConfig(
            image_dir=image_dir, tfhub_module=tiny_module, bottleneck_dir=str(tmp_path / 'bn'),
            output_graph=str(work / 'graph.pb'), output_labels=str(work / 'labels.txt'),
            summaries_dir='', how_many_training_steps=3, train_batch_size=8, **extra)

    assert not tf_framework_config.is_op_determinism_enabled()
    pipeline.run(config('seeded', random_seed=5, flip_left_right=True))
    assert not tf_framework_config.is_op_determinism_enabled()
    pipeline.run(config('unseeded', flip_left_right=True, random_brightness=10))
    assert tf.random.uniform([2]).shape == [2]  # Unseeded random ops work as before.
    assert os.path.isfile(tmp_path / 'unseeded' / 'graph.pb')
