"""compat.classifier: graphs of every generation detected and scored as a direct TF1 run does."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from compat import classifier, graphs, signature
from retrain.common.errors import ConfigError, ToolError

import graph_builders as gb
from conftest import make_image_folder


@pytest.fixture(scope='module')
def photos(tmp_path_factory) -> list:
    folder = make_image_folder(str(tmp_path_factory.mktemp('photos')), per_class=3, seed=5)
    return list(gb.image_paths(folder))


def _contents(paths):
    return [open(path, 'rb').read() for path in paths]


# (builder, expected entry point, mean, std, how old clients fed it)
GENERATIONS = {
    'inception': (gb.inception_like, 'Mul:0', 128.0, 128.0, 'DecodeJpeg/contents:0'),
    'poets': (gb.poets_like, 'input:0', 127.5, 127.5, 'input:0'),
    'hub': (gb.hub_like, 'Placeholder:0', 0.0, 255.0, 'Placeholder:0'),
}


@pytest.mark.parametrize('name', sorted(GENERATIONS))
def test_generation_detected_and_scored_like_a_tf1_session(name, tmp_path, photos):
    build, entry, mean, std, classic_feed = GENERATIONS[name]
    path = gb.save(build(), str(tmp_path / 'graph.pb'))
    model = classifier.load(path)
    assert (model.spec.tensor, model.spec.mean, model.spec.std) == (entry, mean, std)
    assert model.spec.size == (gb.SIZE, gb.SIZE)
    assert model.output == 'final_result:0' and model.num_classes == gb.CLASSES
    scores = model.classify(_contents(photos))
    expected = np.concatenate([gb.classic_run(path, image, classic_feed, mean, std)
                               for image in photos])
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    # The comparison can tell: the classic mistake (another normalization) scores differently.
    wrong = (128.0, 128.0) if (mean, std) == signature.UNIT else signature.UNIT
    mistaken = gb.classic_run(path, photos[0], entry, *wrong)
    assert np.abs(mistaken - expected[:1]).max() > 0.05


def test_decoded_arrays_and_bytes_give_the_same_scores_in_any_batch_size(tmp_path, photos):
    model = classifier.load(gb.save(gb.poets_like(), str(tmp_path / 'graph.pb')))
    assert model.spec.batch == 1  # Fixed batch: images are run one at a time.
    decoded = np.stack([model.prepare(contents) for contents in _contents(photos)])
    np.testing.assert_allclose(model.classify(decoded), model.classify(_contents(photos)),
                               atol=1e-6)
    hub = classifier.load(gb.save(gb.hub_like(), str(tmp_path / 'hub.pb')))
    together = hub.classify(_contents(photos))
    one_by_one = np.concatenate([hub.classify(_contents([p])) for p in photos])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_a_model_without_the_judgement_says_so_in_its_description(tmp_path):
    """label_image -v prints the description: it says whether the model can call an image
    unknown, both ways (the README promises it)."""
    model = classifier.load(gb.save(gb.hub_like(), str(tmp_path / 'graph.pb')))
    assert model.describe().splitlines()[-1] == '  ' + classifier.NO_JUDGEMENT


def test_only_softmax_is_the_output_when_there_is_no_final_result(tmp_path):
    model = classifier.load(gb.save(gb.hub_like('probabilities'), str(tmp_path / 'graph.pb')))
    assert model.output == 'probabilities:0'


def test_overrides_are_honoured_and_contradictions_flagged(tmp_path, photos):
    path = gb.save(gb.hub_like(), str(tmp_path / 'graph.pb'))
    wrong = classifier.load(path, classifier.Overrides(input_layer='Placeholder', mean=128.0,
                                                       std=128.0))
    assert (wrong.spec.mean, wrong.spec.std, wrong.spec.expected) == (128.0, 128.0, (0.0, 255.0))
    expected = gb.classic_run(path, photos[0], 'Placeholder:0', 128.0, 128.0)
    np.testing.assert_allclose(wrong.classify(_contents(photos[:1])), expected, atol=1e-4)
    close = classifier.load(gb.save(gb.poets_like(), str(tmp_path / 'poets.pb')),
                            classifier.Overrides(mean=128.0, std=128.0))
    assert close.spec.expected is None  # 128/128 vs 127.5/127.5: the same thing.


def test_encoded_entry_point_when_asked_for(tmp_path, photos):
    path = gb.save(gb.inception_like(), str(tmp_path / 'graph.pb'))
    model = classifier.load(path, classifier.Overrides(input_layer='DecodeJpeg/contents:0'))
    assert model.takes_encoded and model.spec.scalar
    expected = np.concatenate([gb.classic_run(path, image, 'DecodeJpeg/contents:0')
                               for image in photos])
    np.testing.assert_allclose(model.classify(_contents(photos)), expected, atol=1e-6)


def test_legacy_poets_graph_matches_a_direct_tf1_run(shared_dir):
    folder = os.path.join(shared_dir, 'models', 'legacy', 'glasses_mobilenet_0.25_224')
    path = os.path.join(folder, 'retrained_graph.pb')
    model = classifier.load(path)
    assert (model.spec.tensor, model.spec.mean, model.spec.std) == ('input:0', 127.5, 127.5)
    assert model.spec.size == (224, 224) and model.num_classes == 2
    photos = sorted(os.path.join(root, name) for root, _, names in
                    os.walk(os.path.join(shared_dir, 'data', 'flower_photos_small'))
                    for name in names if name.endswith('.jpg'))[::150]
    expected = np.concatenate([gb.classic_run(path, image, 'input:0', 127.5, 127.5, size=224)
                               for image in photos])
    np.testing.assert_allclose(model.classify(_contents(photos)), expected, atol=1e-4)


def test_saved_model_and_converted_models_classify_alike(tmp_path, photos):
    path = gb.save(gb.poets_like(), str(tmp_path / 'graph.pb'))
    from compat import convert
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    saved = convert.convert(path, labels, str(tmp_path / 'saved'),
                            str(tmp_path / 'model.tflite'))
    assert saved.spec.tensor == 'image' and (saved.spec.mean, saved.spec.std) == signature.UNIT
    assert saved.kind == 'retrain --saved_model_dir or compat convert'  # inspect's `made by`.
    lite = classifier.load(str(tmp_path / 'model.tflite'))
    expected = classifier.load(path).classify(_contents(photos))
    np.testing.assert_allclose(saved.classify(_contents(photos)), expected, atol=1e-5)
    np.testing.assert_allclose(lite.classify(_contents(photos)), expected, atol=1e-4)
    with open(tmp_path / 'saved' / 'assets' / 'labels.txt', encoding='utf-8') as f:
        assert f.read() == open(labels, encoding='utf-8').read()
    loaded = tf.saved_model.load(str(tmp_path / 'saved')).signatures['serving_default']
    assert set(loaded.structured_outputs) == {'prediction'}


@pytest.mark.parametrize('content', [b'', b'hello, not a graph\n', b'\x00\x01\x02'])
def test_not_a_graph_is_one_line(tmp_path, content):
    path = tmp_path / 'graph.pb'
    path.write_bytes(content)
    with pytest.raises(ToolError, match=r'^not a TensorFlow graph: .*graph\.pb$'):
        classifier.load(str(path))


def test_graph_function_still_works_for_legacy_users(tmp_path, photos):
    graph_def = gb.hub_like()
    function = graphs.graph_function(graph_def, ['Placeholder:0'], ['final_result:0'])
    images = np.random.default_rng(7).random((2, gb.SIZE, gb.SIZE, 3)).astype(np.float32)
    with tf.Graph().as_default() as graph:  # The same graph run the TF1 way, for reference.
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            expected = session.run('final_result:0', {'Placeholder:0': images})
    result = function(tf.constant(images))[0].numpy()
    assert result.shape == (2, gb.CLASSES) and not np.allclose(result[0], result[1])
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('output, shown', [('Mul', '[1, 24, 24, 3]'),
                                           ('DecodeJpeg/contents', '[]')])
def test_an_output_layer_that_is_not_class_scores_is_one_line(tmp_path, output, shown):
    """--output_layer naming an image or the JPEG bytes once died ranking the 'scores'."""
    path = gb.save(gb.inception_like(), str(tmp_path / 'graph.pb'))
    with pytest.raises(ToolError) as error:
        classifier.load(path, classifier.Overrides(output_layer=output))
    assert str(error.value) == (f'{output}:0 of {path} is {shown}, not class scores '
                                '[N, classes]: name the scores with --output_layer')


def test_a_tflite_model_is_known_by_its_content_whatever_its_name(tmp_path, photos):
    """`compat convert --tflite_output_file model.lite` failed its own check (the staged file was
    read as a frozen graph), and label_image called such a file 'not a TensorFlow graph'."""
    from compat import convert
    path = gb.save(gb.poets_like(), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    convert.convert(path, labels, str(tmp_path / 'saved'), str(tmp_path / 'model.lite'))
    lite = classifier.load(str(tmp_path / 'model.lite'))
    assert lite.format == classifier.TFLITE
    shutil.copy(tmp_path / 'model.lite', tmp_path / 'model.onnx')  # Was "not an ONNX model".
    assert classifier.model_format(str(tmp_path / 'model.onnx')) == classifier.TFLITE
    np.testing.assert_allclose(lite.classify(_contents(photos)),
                               classifier.load(path).classify(_contents(photos)), atol=1e-4)


def test_near_misses_of_a_saved_model_name_the_path_to_give(converted, tmp_path):
    """TF Serving's base folder, and a SavedModel's own saved_model.pb file, were each 'not a
    TensorFlow graph' without a hint."""
    saved, _ = converted
    base = tmp_path / 'models' / 'flowers'
    for version in ('1', '12'):
        shutil.copytree(saved, base / version)
    with pytest.raises(ToolError) as error:
        classifier.load(str(base))
    assert str(error.value) == (
        f'not a TensorFlow graph: {base} (a directory without saved_model.pb; its version folder '
        f'12 holds a SavedModel: name {base / "12"})')
    graph = os.path.join(saved, 'saved_model.pb')
    with pytest.raises(ToolError) as error:
        classifier.load(graph)
    assert str(error.value) == (f'{graph} is the graph of a SavedModel: name its folder {saved} '
                                'instead')


@pytest.mark.parametrize('over', ['graph.pb', 'labels.txt'])
def test_convert_refuses_to_write_the_tflite_model_over_its_inputs(tmp_path, over):
    from compat import convert
    path = gb.save(gb.poets_like(), str(tmp_path / 'graph.pb'))
    labels = gb.write_labels(str(tmp_path / 'labels.txt'))
    before = {name: (tmp_path / name).read_bytes() for name in ('graph.pb', 'labels.txt')}
    target = os.path.join(str(tmp_path), '.', over)
    with pytest.raises(ConfigError) as error:
        convert.convert(path, labels, str(tmp_path / 'saved'), target)
    flag = 'GRAPH' if over == 'graph.pb' else '--labels'
    assert str(error.value) == (f'--tflite_output_file and {flag} are the same path ({target}): '
                                'the run would overwrite one with the other')
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(os.listdir(tmp_path)) == ['graph.pb', 'labels.txt']


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(SavedModel folder, .tflite file) converted from a Poets-era graph."""
    from compat import convert
    root = tmp_path_factory.mktemp('converted')
    path = gb.save(gb.poets_like(), str(root / 'graph.pb'))
    labels = gb.write_labels(str(root / 'labels.txt'))
    convert.convert(path, labels, str(root / 'saved'), str(root / 'model.tflite'))
    return str(root / 'saved'), str(root / 'model.tflite')


@pytest.mark.parametrize('which', [0, 1])
@pytest.mark.parametrize('flag', ['input_layer', 'output_layer'])
def test_layer_flags_must_name_one_of_the_model_s_own(converted, which, flag):
    path = converted[which]
    with pytest.raises(ToolError) as error:
        classifier.load(path, classifier.Overrides(**{flag: 'nosuch'}))
    what = flag.split('_')[0]
    assert str(error.value).startswith(f'no {what} nosuch in {path}: its {what}s are ')
    model = classifier.load(path)
    named = classifier.load(path, classifier.Overrides(output_layer=model.output))
    assert named.output == model.output


@pytest.mark.parametrize('damage', ['no variables', 'truncated values'])
def test_a_saved_model_with_damaged_variables_is_one_line(converted, tmp_path, damage):
    saved = str(tmp_path / 'saved')
    shutil.copytree(converted[0], saved)
    variables = os.path.join(saved, 'variables')
    if damage == 'no variables':
        shutil.rmtree(variables)
    else:
        data, = [n for n in os.listdir(variables) if n.startswith('variables.data')]
        os.truncate(os.path.join(variables, data), 100)
    with pytest.raises(ToolError) as error:
        classifier.load(saved)
    assert str(error.value).startswith(f'cannot load SavedModel {saved}: ')
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('damage, expected', [
    ('empty graph', 'not a SavedModel: {} (its saved_model.pb is damaged or truncated)'),
    ('truncated graph', 'not a SavedModel: {} (its saved_model.pb is damaged or truncated)'),
    ('graph a folder', 'cannot read {}: Is a directory')])
def test_a_saved_model_with_a_damaged_graph_is_one_line_saying_so(converted, tmp_path, damage,
                                                                  expected):
    """An empty saved_model.pb parses as a SavedModel without graphs (it used to be called one
    without a serving_default signature); a folder in its place was a traceback."""
    saved = str(tmp_path / 'saved')
    shutil.copytree(converted[0], saved)
    graph = os.path.join(saved, 'saved_model.pb')
    if damage == 'graph a folder':
        os.remove(graph)
        os.mkdir(graph)
    else:
        os.truncate(graph, 0 if damage == 'empty graph' else os.path.getsize(graph) // 2)
    with pytest.raises(ToolError) as error:
        classifier.load(saved)
    assert str(error.value) == expected.format(graph if damage == 'graph a folder' else saved)


def test_a_model_taking_images_over_the_pixel_budget_is_refused(tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 20000, 20000, 3], name='input')
        tf.nn.softmax(tf.reduce_mean(images, axis=[1, 2]), name='final_result')
    path = str(tmp_path / 'huge.pb')
    with open(path, 'wb') as f:
        f.write(graph.as_graph_def().SerializeToString())
    with pytest.raises(ToolError) as error:
        classifier.load(path)
    assert str(error.value) == (f'input:0 of {path} takes images of 20000x20000 pixels, over the '
                                'limit of 50,000,000 pixels')
