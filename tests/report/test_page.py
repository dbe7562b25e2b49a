"""The run report as users meet it: the log lines, --report_dir's report.json and index.html (opened
in a real browser), --noreport, and report folders that must not be replaced."""
import base64
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from retrain.common.errors import ConfigError, ToolError
from retrain.report import page
from retrain.train import unknown as unknown_module

from conftest import make_image_folder, rendered_in_chromium, retrain_args, run_module


@pytest.fixture(scope='module')
def reported(tmp_path_factory, image_dir, tiny_module):
    """One CLI run with --report_dir on a set with a photo copied into another class and a file
    that is not an image: (process, out folder, image folder)."""
    root = tmp_path_factory.mktemp('report')
    images = str(root / 'images')
    shutil.copytree(image_dir, images)
    shutil.copy(os.path.join(images, 'red', 'red_003.jpg'),
                os.path.join(images, 'blue', 'copied_red.jpg'))
    with open(os.path.join(images, 'green', 'broken.jpg'), 'w', encoding='utf-8') as f:
        f.write('not an image')
    out = str(root / 'out')
    process = run_module('retrain', *retrain_args(images, tiny_module, out, 40,
                                                  '--report_dir', os.path.join(out, 'report')))
    assert process.returncode == 0, process.stderr[-3000:]
    return process, out, images


def _load(out):
    with open(os.path.join(out, 'report', page.JSON), encoding='utf-8') as f:
        return json.load(f)


def test_every_run_logs_the_findings(reported):
    process, _, _ = reported
    log = process.stderr
    counted = re.search(r'Report: \d+ duplicate group\(s\) \((\d+) exact, \d+ near(?:, (\d+) of '
                        r'them with byte-identical copies too)?\) among 91 images', log)
    # The copied photo is in an exact group, or in a near one that says it holds copies (once
    # it was counted as near only: "0 exact", as though no file had a copy).
    assert counted and int(counted[1]) + int(counted[2] or 0) >= 1, log[-3000:]
    assert re.search(r'Report: [1-9]\d* duplicate group\(s\) span different classes: conflicting '
                     'labels', log)
    assert re.search(r'Report: \d+ suspected label error\(s\)', log)
    assert 'Wrote report to ' in log


def test_report_json_follows_the_documented_schema(reported):
    _, out, images = reported
    data = _load(out)
    assert data['format'] == page.FORMAT
    assert data['labels'] == ['blue', 'green', 'red']
    assert sum(data['splits'].values()) == 91  # 90 images and the copy; not the broken file.
    assert data['settings']['report_dir'] == os.path.join(out, 'report')
    copy = os.path.join(images, 'blue', 'copied_red.jpg')
    original = os.path.join(images, 'red', 'red_003.jpg')
    (group,) = [g for g in data['duplicates'] if copy in g]
    assert original in group
    details = data['duplicate_details'][data['duplicates'].index(group)]
    assert details['spans_classes'] is True and details['same_bytes'] == 2
    assert {i['path'] for i in details['images']} == set(group)
    for issue in data['label_issues']:
        assert set(issue) == {'path', 'given', 'suggested', 'confidence', 'given_probability',
                              'split'}
        assert issue['given'] != issue['suggested'] and 0 < issue['confidence'] <= 1
    for miss in data['misclassified']:
        assert set(miss) == {'path', 'given', 'predicted', 'confidence'}
    tested = sum(c['testing'] for c in data['per_class'])
    assert tested == data['metrics']['test_images'] == sum(map(sum, data['confusion_matrix']))
    assert [s['path'] for s in data['skipped']] == [os.path.join(images, 'green', 'broken.jpg')]
    assert data['skipped'][0]['reason']
    curves = data['curves']
    assert [step for step, _ in curves['train']['accuracy']] == list(range(0, 40, 10)) + [39]
    assert data['metrics']['validation_accuracy'] == curves['validation']['accuracy'][-1][1]


def test_report_shows_the_reliability_and_the_unknown_operating_point(reported):
    process, out, _ = reported
    confidence = _load(out)['confidence']
    assert confidence['split'] == 'testing'
    assert sum(b['images'] for b in confidence['bins']) == confidence['images'] > 0
    for b in confidence['bins']:
        assert b['low'] <= b['confidence'] <= b['high'] and 0 <= b['accuracy'] <= 1
    error = sum(b['images'] * abs(b['confidence'] - b['accuracy']) for b in confidence['bins'])
    assert confidence['expected_calibration_error'] == pytest.approx(error / confidence['images'])
    unknown = confidence['unknown']
    assert unknown['threshold'] == 0
    # The default operating point flags 10% of the reference images (retrain.train.unknown:
    # with this few validation images, the held-out training ones too): few validation images.
    splits = _load(out)['splits']
    validated, training = splits['validation'], splits['training']
    assert 0 < validated < unknown_module.MIN_REFERENCE
    folds = unknown_module.held_out_folds(training, training, validated)
    assert (f'{validated} validation images are too few to set its operating point alone; '
            f'training the layer {folds} more times without {training} held-out training images'
            in process.stderr)
    # The shares are of this run's images. Not bounded near 5% here: the images of a class are
    # one colour, so they score alike and cross the threshold together (measured over 60 runs:
    # 0% of the test images in most, up to 55% when a class sits at the threshold); the rate
    # itself is tested in tests/train/test_unknown.py on images that differ.
    for split in ('validation', 'testing'):
        flagged = unknown[f'{split}_share'] * splits[split]
        assert flagged == pytest.approx(round(flagged)) and 0 <= flagged < splits[split]
    with open(os.path.join(out, 'report', 'index.html'), encoding='utf-8') as f:
        html = f.read()
    assert '<section id="confidence">' in html and 'aria-label="Reliability diagram"' in html
    assert html.count('<rect ') == len(confidence['bins'])


def test_a_near_group_holding_byte_copies_says_so(reported):
    """Byte copies joined with a re-encoded photo make a near group; the page says it holds
    copies too (else they showed as near-duplicates only)."""
    report = _load(reported[1])
    report['duplicate_details'] = [dict(report['duplicate_details'][0], exact=False,
                                        similarity=0.95, same_bytes=2)]
    section = re.search(r'<section id="duplicates">.*?</section>', page.render(report, {}),
                        re.S).group(0)
    assert 'near, cosine ≥ 0.950' in section and '2 with the same bytes' in section


def test_long_lists_show_their_first_entries_and_say_so(reported):
    """A large set's page holds at most page.SHOWN images of a list, so it stays small."""
    report = _load(reported[1])
    wrong = {'path': reported[2], 'given': 'red', 'predicted': 'blue', 'confidence': 0.9}
    report['misclassified'] = [wrong] * (page.SHOWN + 10)
    group = report['duplicate_details'][0]
    report['duplicate_details'] = [group] * (page.SHOWN + 1)
    html = page.render(report, {})
    section = re.search(r'<section id="misclassified">.*?</section>', html, re.S).group(0)
    assert section.count('<figure') == page.SHOWN
    assert f'The first {page.SHOWN} of {page.SHOWN + 10} are shown' in section
    section = re.search(r'<section id="duplicates">.*?</section>', html, re.S).group(0)
    assert section.count('class="group"') == page.SHOWN
    assert f'The first {page.SHOWN} of {page.SHOWN + 1} are shown' in section


def test_page_is_one_small_file_with_thumbnails(reported):
    _, out, _ = reported
    assert sorted(os.listdir(os.path.join(out, 'report'))) == sorted(page.FILES)
    with open(os.path.join(out, 'report', 'index.html'), encoding='utf-8') as f:
        html = f.read()
    assert 'http://' not in html and 'https://' not in html  # Nothing from the network.
    uris = re.findall(r'src="(data:image/jpeg;base64,[^"]+)"', html)
    assert uris
    thumb = tf.io.decode_jpeg(base64.b64decode(uris[0].split(',', 1)[1]))
    assert max(thumb.shape[:2]) <= page.THUMBNAIL_SIZE


def test_page_and_its_images_load_in_headless_chromium(reported, tmp_path):
    _, out, _ = reported
    dom, images = rendered_in_chromium(os.path.join(out, 'report', 'index.html'),
                                       str(tmp_path / 'profile'))
    assert '<h1>Retrain report</h1>' in dom and 'aria-label="Reliability diagram"' in dom
    assert images > 0
    assert dom.count('data-loaded="yes"') == images, 'some thumbnails did not load'


def test_noreport_skips_the_findings(image_dir, tiny_module, tmp_path):
    process = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5,
                                                  '--noreport'))
    assert process.returncode == 0, process.stderr[-3000:]
    assert 'Report:' not in process.stderr


@pytest.mark.parametrize('kind', ['folder of other files', 'file'])
def test_a_folder_of_other_files_or_a_file_is_a_usage_error(image_dir, tiny_module, tmp_path, kind):
    occupied = tmp_path / 'photos'
    if kind == 'file':
        occupied.write_bytes(b'mine')
        reason = 'is a file, not a folder'
    else:
        occupied.mkdir()
        (occupied / 'holiday.jpg').write_bytes(b'mine')
        reason = 'holds other files than a report; choose a new or empty folder'
    process = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 5,
                                                  '--report_dir', str(occupied)))
    assert process.returncode == 2
    assert 'Traceback' not in process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        f'retrain: error: --report_dir {occupied} {reason}')
    assert process.stderr.count('retrain: error:') == 1
    if kind == 'file':
        assert occupied.read_bytes() == b'mine'
    else:
        assert os.listdir(occupied) == ['holiday.jpg']
        assert (occupied / 'holiday.jpg').read_bytes() == b'mine'
    assert not os.path.exists(tmp_path / 'bn') and not os.path.exists(tmp_path / 'graph.pb')


def test_only_a_new_or_empty_folder_or_an_earlier_report_is_replaced(reported, tmp_path):
    _, out, _ = reported
    page.check_output(os.path.join(out, 'report'))  # An earlier report: fine.
    page.check_output(str(tmp_path / 'new'))
    page.check_output(str(tmp_path))  # Empty.
    (tmp_path / 'file').write_text('x', encoding='utf-8')
    with pytest.raises(ConfigError, match='is a file'):
        page.check_output(str(tmp_path / 'file'))
    fake = tmp_path / 'fake'
    fake.mkdir()
    (fake / page.JSON).write_text('{"format": "something else"}', encoding='utf-8')
    with pytest.raises(ConfigError, match='holds other files'):
        page.check_output(str(fake))


def test_names_that_are_not_utf8_are_shown_as_the_log_shows_them(tiny_module, tmp_path):
    """A damaged image and a duplicate whose names hold the byte 0xff: the run ends well and the
    report shows them as `bad\\xff.jpg` (as the log and `ls -b` do), the copy with its thumbnail."""
    images = make_image_folder(str(tmp_path / 'images'), per_class=12)
    # Pure noise, unlike the single-colour images: the copy's group is the pair alone.
    noise = np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8)
    tf.io.write_file(os.path.join(images, 'red', 'noise.jpg'), tf.io.encode_jpeg(noise))
    red = os.fsencode(os.path.join(images, 'red'))
    green = os.fsencode(os.path.join(images, 'green'))
    try:
        with open(os.path.join(green, b'bad\xff.jpg'), 'wb') as f:
            f.write(b'not an image')
        shutil.copy(os.path.join(red, b'noise.jpg'), os.path.join(red, b'copy\xff.jpg'))
    except OSError as e:  # macOS file systems refuse names that are not valid UTF-8.
        pytest.skip(f'this file system refuses names that are not UTF-8: {e}')
    out = str(tmp_path / 'out')
    process = run_module('retrain', *retrain_args(images, tiny_module, out, 10,
                                                  '--report_dir', os.path.join(out, 'report')))
    assert process.returncode == 0, process.stderr[-3000:]
    assert 'Traceback' not in process.stderr
    assert os.path.isfile(os.path.join(out, 'graph.pb'))
    assert os.path.isfile(os.path.join(out, 'labels.txt'))
    damaged = os.path.join(images, 'green', 'bad\\xff.jpg')
    copy = os.path.join(images, 'red', 'copy\\xff.jpg')
    data = _load(out)
    assert [s['path'] for s in data['skipped']] == [damaged]
    assert {copy, os.path.join(images, 'red', 'noise.jpg')} in map(set, data['duplicates'])
    with open(os.path.join(out, 'report', page.HTML), encoding='utf-8') as f:
        html = f.read()
    assert f'<td>{damaged}</td>' in html
    figure = re.search(rf'<figure title="{re.escape(copy)}">(.*?)</figure>', html).group(1)
    assert '<img src="data:image/jpeg;base64,' in figure and 'copy\\xff.jpg' in figure


def test_a_report_that_cannot_be_written_is_one_line_naming_the_folder(reported, tmp_path):
    _, out, _ = reported
    report = _load(out)
    (tmp_path / 'file').write_text('x', encoding='utf-8')
    blocked = str(tmp_path / 'file' / 'report')  # Below a file: no folder can be made there.
    with pytest.raises(ToolError, match=rf'^cannot write the report {re.escape(blocked)}: '
                                           r'[^\n]+$'):
        page.write(blocked, report)
    del report['per_class']  # Not the writer's own I/O: the message still names the folder.
    folder = str(tmp_path / 'report')
    with pytest.raises(ToolError, match=rf'^cannot write the report {re.escape(folder)}: '
                                           r"KeyError: 'per_class'$"):
        page.write(folder, report)
