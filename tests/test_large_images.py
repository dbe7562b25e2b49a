"""Images over the pixel budget through the real CLIs: a huge PNG, and a JPEG over it even at 1/8
scale, are skipped in one line, a huge JPEG decoded scaled down and used, and the exported models
refuse what is over the budget."""
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from bench.large_images import write_animation, write_blank_png, write_jpeg_claiming
from retrain.cache import bottleneck_files
from retrain.features.hub_module import hub_cache_suffix

from conftest import make_image_folder, retrain_args, run_module

HUGE_PNG = (10000, 9000)  # width, height: 90 MP, 257 MB decoded; 0.1 MB on disk.
HUGE_PNG_LINE = '10000x9000 pixels (257 MB decoded) is over the limit of 50,000,000 pixels'
# 3.6 GP: over the budget even at 1/8. Its line once held TensorFlow's words for a failed Assert.
BOMB_LINE = '60000x60000 pixels (10300 MB decoded) is over the limit of 50,000,000 pixels'
# An 8x8 JPEG claiming 20000x20000: within the budget at 1/4, it decoded to a gray image that was
# cached and classified, with libjpeg's "Corrupt JPEG data" on stderr naming no file.
# 60 frames of 1000x1000: its logical screen is within the budget, what giflib decodes is not.
FRAMES_LINE = ('1000x1000 pixels in each of 60 GIF frames (172 MB decoded) is over the limit of '
               '50,000,000 pixels')
LIAR_LINE = ('{size:,} bytes of JPEG data cannot hold its 20000x20000 pixels: damaged, or its '
             'header lies about its size')


@pytest.fixture(scope='module')
def run(tmp_path_factory, tiny_module):
    """A retrain run on small images, a huge PNG, a 56-MP JPEG and one of 3.6 GP: (images, out,
    result)."""
    images = make_image_folder(str(tmp_path_factory.mktemp('large') / 'images'), per_class=10)
    write_blank_png(os.path.join(images, 'red', 'huge.png'), *HUGE_PNG)
    write_jpeg_claiming(os.path.join(images, 'red', 'bomb.jpg'), 60000, 60000)
    write_jpeg_claiming(os.path.join(images, 'red', 'liar.jpg'), 20000, 20000)
    write_animation(os.path.join(images, 'red', 'frames.gif'), 60, 1000)
    big = tf.io.encode_jpeg(tf.fill([7000, 8000, 3], tf.constant(220, tf.uint8)))
    tf.io.write_file(os.path.join(images, 'red', 'big.jpg'), big)
    out = str(tmp_path_factory.mktemp('out'))
    # 30% to test: the split hashes the (temporary) paths, and with the default 10% some folders'
    # 32 images left none for `Final test accuracy`.
    result = run_module('retrain', *retrain_args(images, tiny_module, out, 10,
                                                 '--saved_model_dir', os.path.join(out, 'sm'),
                                                 '--testing_percentage', '30'))
    return images, out, result


def test_images_too_large_to_decode_are_skipped_in_one_line_and_the_run_succeeds(run):
    images, _, result = run
    assert result.returncode == 0, result.stderr[-3000:]
    for name, line in (('huge.png', HUGE_PNG_LINE), ('bomb.jpg', BOMB_LINE),
                       ('liar.jpg', _liar_line(images)), ('frames.gif', FRAMES_LINE)):
        huge = os.path.join(images, 'red', name)
        lines = [line for line in result.stderr.splitlines() if huge in line]
        assert len(lines) == 1 and lines[0].endswith(f'Skipping {huge}: {line}'), lines
    assert 'Skipped 4 unreadable image(s)' in result.stderr
    assert 'Corrupt JPEG data' not in result.stderr
    assert re.search(r'Final test accuracy = [\d.]+%', result.stderr)


def _liar_line(images: str) -> str:
    return LIAR_LINE.format(size=os.path.getsize(os.path.join(images, 'red', 'liar.jpg')))


def test_a_huge_jpeg_is_decoded_scaled_down_and_used(run, tiny_module):
    """Cached under the name of scaled values (docs/COMPATIBILITY.md section 4); the small
    images under their classic names only."""
    images, out, result = run
    assert 'big.jpg' not in result.stderr
    assert '1 large JPEG(s) were decoded scaled down' in result.stderr
    cache = os.path.join(out, 'bn', 'red', 'big.jpg' + hub_cache_suffix(tiny_module))
    assert bottleneck_files.read_bottleneck(cache + '_scaled_jpegs.txt', 19) is not None
    assert not os.path.exists(cache + '.txt')
    assert [name for name in os.listdir(os.path.join(out, 'bn', 'red'))
            if 'scaled' in name] == [os.path.basename(cache) + '_scaled_jpegs.txt']


def test_the_saved_model_refuses_a_huge_image_with_a_clear_error(run):
    images, out, _ = run
    serve = tf.saved_model.load(os.path.join(out, 'sm')).signatures['serving_bytes']
    huge = tf.io.read_file(os.path.join(images, 'red', 'huge.png'))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match='image of 10000x9000 pixels is over the limit of 50,000,000'):
        serve(image_bytes=huge[tf.newaxis])
    bomb = tf.io.read_file(os.path.join(images, 'red', 'bomb.jpg'))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match='image of 60000x60000 pixels is over the limit of 50,000,000'):
        serve(image_bytes=bomb[tf.newaxis])
    frames = tf.io.read_file(os.path.join(images, 'red', 'frames.gif'))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match='GIF of 60 frames of 1000x1000 pixels is over the limit of 50,'):
        serve(image_bytes=frames[tf.newaxis])
    big = tf.io.read_file(os.path.join(images, 'red', 'big.jpg'))
    assert serve(image_bytes=big[tf.newaxis])['scores'].shape == (1, 3)


def test_the_frozen_graph_refuses_a_huge_image_on_its_jpeg_input(run):
    images, out, _ = run
    graph_def = tf.compat.v1.GraphDef.FromString(open(os.path.join(out, 'graph.pb'), 'rb').read())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name='')
    huge = open(os.path.join(images, 'red', 'huge.png'), 'rb').read()
    with tf.compat.v1.Session(graph=graph) as session:
        with pytest.raises(tf.errors.InvalidArgumentError, match='over the limit'):
            session.run('final_result:0', {'DecodeJpeg/contents:0': huge})
        scores = session.run('final_result:0', {'DecodeJpeg/contents:0': open(
            os.path.join(images, 'red', 'red_000.jpg'), 'rb').read()})
    assert np.isclose(scores.sum(), 1)


@pytest.mark.parametrize('model', ['graph.pb', 'sm'])
def test_label_image_skips_a_huge_image_in_one_line(run, model):
    images, out, _ = run
    huge, bomb, liar, frames = (os.path.join(images, 'red', name)
                                for name in ('huge.png', 'bomb.jpg', 'liar.jpg', 'frames.gif'))
    result = run_module('label_image', '--graph', os.path.join(out, model),
                        '--labels', os.path.join(out, 'labels.txt'),
                        huge, bomb, liar, frames, os.path.join(images, 'red', 'red_000.jpg'))
    assert result.returncode == 1  # Some image failed.
    assert [line for line in result.stderr.splitlines() if 'red_000' not in line] == [
        f'label_image: error: cannot classify {huge}: {HUGE_PNG_LINE}',
        f'label_image: error: cannot classify {bomb}: {BOMB_LINE}',
        f'label_image: error: cannot classify {liar}: {_liar_line(images)}',
        f'label_image: error: cannot classify {frames}: {FRAMES_LINE}']
    assert 'red_000.jpg' in result.stdout


def test_nofast_jpeg_decoding_computes_the_classic_values_beside_the_scaled_ones(run,
                                                                              tiny_module):
    """The same cache folder: the classic values of the small images are read, the scaled file
    of the large one is not (it is computed at full scale, or as near as the budget allows, and
    cached under its classic name); the run says nothing of scaled JPEGs."""
    images, out, first = run
    result = run_module('retrain', *retrain_args(images, tiny_module, out, 10,
                                                 '--output_graph', os.path.join(out, 'full.pb'),
                                                 '--testing_percentage', '30',
                                                 '--nofast_jpeg_decoding'))
    assert result.returncode == 0, result.stderr[-3000:]
    cached, computed = (int(n) for n in re.search(
        r'(?m)^\S+ \S+ \S+ (\d+) bottlenecks cached in .*, (\d+) to compute',
        result.stderr).groups())
    assert computed == 5 and cached > 20  # big.jpg, and the four images it skips.
    assert 'decoded scaled down' not in result.stderr
    classic = os.path.join(out, 'bn', 'red', 'big.jpg' + hub_cache_suffix(tiny_module) + '.txt')
    assert bottleneck_files.read_bottleneck(classic, 19) is not None
