"""The run report's log lines, from real findings, and its metrics against the log's."""
import json
import os
import re

import numpy as np
import pytest

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.data.image_lists import CATEGORIES
from retrain.report import findings, page, run_report

from conftest import retrain_args, run_module
from multilabel_images import make_pair_folders


def test_more_images_than_the_exact_search_takes_are_reported(tmp_path, caplog):
    """Past EXACT_SEARCH_LIMIT images every run once ended in an AttributeError after training
    (a parameter named like the module it read a constant of)."""
    caplog.set_level('INFO', logger='absl')
    count = findings.EXACT_SEARCH_LIMIT + 1
    rng = np.random.default_rng(0)
    labels = np.arange(count) % 3
    features = (rng.normal(size=(count, 16)) + 3 * np.eye(16)[labels]).astype(np.float32)
    paths = [str(tmp_path / f'{i}.jpg') for i in range(count)]
    for i, path in enumerate(paths):
        with open(path, 'w', encoding='ascii') as f:
            f.write(str(i))
    empty = {split: np.zeros((0, 16), np.float32) for split in CATEGORIES}
    data = Bottlenecks({**empty, 'training': features},
                       {**{s: np.zeros(0, np.int64) for s in CATEGORIES}, 'training': labels},
                       {**{s: [] for s in CATEGORIES}, 'training': paths})
    assert run_report.report_run(RetrainConfig(), ['a', 'b', 'c'], data, None,
                                 run_report.UNTESTED, []) is None
    assert (f'Report: more than {findings.EXACT_SEARCH_LIMIT} images: near-duplicates were '
            'searched in buckets') in caplog.text
    assert f'among {count} images' in caplog.text


@pytest.mark.parametrize('multi_label', [False, True])
def test_report_metrics_are_the_logs_with_a_test_batch_size(multi_label, image_dir, tiny_module,
                                                           tmp_path):
    """--test_batch_size 3 measures `Final test` lines on 3 drawn test images; report.json once
    gave their accuracy with N of all the test images, and mAP, macro F1 and exact match measured
    again on all of them: figures the log never printed."""
    images = (make_pair_folders(str(tmp_path / 'pairs')) if multi_label else image_dir)
    out = str(tmp_path / 'out')
    report = os.path.join(out, 'report')
    process = run_module('retrain', *retrain_args(
        images, tiny_module, out, 20, '--random_seed', '0', '--testing_percentage', '30',
        '--test_batch_size', '3', '--report_dir', report,
        *(['--multi_label'] if multi_label else [])))
    assert process.returncode == 0, process.stderr[-3000:]
    with open(os.path.join(report, page.JSON), encoding='utf-8') as f:
        data = json.load(f)
    metrics = data['metrics']
    assert data['splits']['testing'] > 3
    assert metrics['test_images'] == 3
    logged = dict(re.findall(r'Final test (.+?) = ([\d.]+)%? \(N=3\)', process.stderr))
    assert f"{metrics['test_accuracy'] * 100:.1f}" == logged['accuracy']
    if multi_label:
        assert f"{metrics['test_map']:.3f}" == logged['mAP']
        assert f"{metrics['test_macro_f1']:.3f}" == logged['macro F1']
        assert f"{metrics['test_exact_match'] * 100:.1f}" == logged['exact match']
