"""The run report of a --multi_label run: log lines, report.json and the page in Chromium."""
import json
import os
import re
import shutil

import pytest

from retrain.report import page

from conftest import rendered_in_chromium, retrain_args, run_module
from multilabel_images import make_pair_folders


@pytest.fixture(scope='module')
def reported(tmp_path_factory, tiny_module):
    """One seeded multi-label run, with --label_thresholds and --report_dir, on red/green/blue
    pairs where one red-green image was also put in the blue folder (a wrong label) and a red-blue
    image was copied under another name into the red folder only (a missing label, and a
    duplicate of another label set): (process, report folder, image folder)."""
    root = tmp_path_factory.mktemp('multilabel_report')
    images = make_pair_folders(str(root / 'images'), per_pair=12)
    shutil.copy(os.path.join(images, 'red', 'red_green_003.jpg'), os.path.join(images, 'blue'))
    shutil.copy(os.path.join(images, 'red', 'red_blue_001.jpg'),
                os.path.join(images, 'red', 'copy_of_red_blue.jpg'))
    out = str(root / 'out')
    report = os.path.join(out, 'report')
    process = run_module('retrain', *retrain_args(images, tiny_module, out, 60, '--multi_label',
                                                  '--random_seed', '0', '--label_thresholds',
                                                  '--report_dir', report))
    assert process.returncode == 0, process.stderr[-3000:]
    return process, report, images


def _load(report):
    with open(os.path.join(report, page.JSON), encoding='utf-8') as f:
        return json.load(f)


def test_the_findings_are_logged(reported):
    log = reported[0].stderr
    counted = re.search(r'Report: \d+ duplicate group\(s\) \((\d+) exact, \d+ near(?:, (\d+) of '
                        r'them with byte-identical copies too)?\) among 37 images', log)
    assert counted and int(counted[1]) + int(counted[2] or 0) >= 1, log[-3000:]  # The copy.
    assert re.search(r'Report: [1-9]\d* duplicate group\(s\) span different label sets', log)
    assert 'a cross-validated head confidently contradicts the given label' in log
    assert re.search(r'Label thresholds chosen on 4 validation images: blue [\d.]+, green [\d.]+, '
                     r'red [\d.]+\n', log)
    assert f'Wrote report to {os.path.join(reported[1], page.HTML)}' in log


def test_report_json_has_the_multi_label_parts(reported):
    _, report, images = reported
    data = _load(report)
    assert data['format'] == page.FORMAT and data['kind'] == 'multi_label'
    assert data['labels'] == ['blue', 'green', 'red']
    # Each label is on 24 images; blue also on the planted one, red also on the copy.
    assert [sum(p[split] for split in data['splits']) for p in data['per_label']] == [25, 24, 25]
    assert data['co_occurrence'] == [[25, 13, 13], [13, 24, 12], [13, 12, 25]]
    metrics = data['metrics']
    assert {'test_accuracy', 'test_map', 'test_macro_f1', 'test_exact_match'} <= set(metrics)
    for entry in data['misclassified']:
        assert set(entry) == {'path', 'given', 'predicted', 'scores', 'wrong_labels'}
        assert entry['given'] != entry['predicted']
    copy = os.path.join(images, 'red', 'copy_of_red_blue.jpg')
    (group,) = [g for g in data['duplicate_details']
                if copy in [image['path'] for image in g['images']]]
    assert group['spans_classes']
    assert {tuple(image['labels']) for image in group['images']} == {('red',), ('blue', 'red')}
    issues = [(i['path'], i['label'], i['given']) for i in data['label_issues']]
    assert issues[:2] == [(os.path.join(images, 'blue', 'red_green_003.jpg'), 'blue', True),
                          (copy, 'blue', False)]
    for issue in data['label_issues']:
        assert set(issue) == {'path', 'label', 'given', 'probability', 'split'}
        assert (issue['probability'] < 0.5) == issue['given']


def test_multi_label_page_renders_in_headless_chromium(reported, tmp_path):
    dom, images = rendered_in_chromium(os.path.join(reported[1], page.HTML),
                                       str(tmp_path / 'profile'))
    assert '<h1>Retrain report</h1>' in dom
    for section in ('labels', 'co-occurrence', 'misclassified', 'duplicates', 'label-issues'):
        assert f'<section id="{section}">' in dom
    assert 'test mAP' in dom and 'Confusion matrix' not in dom
    assert images > 0 and dom.count('data-loaded="yes"') == images
