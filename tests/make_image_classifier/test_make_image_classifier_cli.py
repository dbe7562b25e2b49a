"""make_image_classifier: its flags and defaults, one run's outputs read as its users read them,
the accuracy gate, the cache reused by a second run, fine-tuning with augmentation."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from compat import classifier
from retrain.common.errors import ToolError
from retrain.data import keras_split

from conftest import REPO_ROOT, make_image_folder, run_module, tflite_interpreter

_PARSE = '''
import dataclasses, json, sys
from make_image_classifier import cli
for argv in json.loads(sys.argv[1]):
    cli.FLAGS.unparse_flags()
    cli.FLAGS(['make_image_classifier', *argv])
    job = cli.job_from_flags()
    print(json.dumps({**dataclasses.asdict(job.head), **{
        k: v for k, v in dataclasses.asdict(job.config).items()
        if isinstance(v, (str, int, float, bool, type(None)))},
        'validation_split': job.validation_split, 'fine_tune': job.fine_tune,
        'assert_accuracy_at_least': job.assert_accuracy_at_least,
        'tf_data_split': job.tf_data_split}))
'''


def _parse(*argvs):
    """The parsed settings of each command line, in one interpreter."""
    done = subprocess.run([sys.executable, '-c', _PARSE, json.dumps(argvs)], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{')]


def test_every_flag_parses_with_its_default_and_its_forms():
    defaults, given, negated = _parse(
        [],
        ['--image_dir=imgs', '--tfhub_module', 'mod', '--image_size=96',
         '--saved_model_dir=sm', '--tflite_output_file=m.tflite', '--labels_output_file=l.txt',
         '--summaries_dir=logs', '--assert_accuracy_at_least=0.5', '--train_epochs=2',
         '--do_fine_tuning', '--batch_size=8', '--learning_rate=0.1', '--momentum=0.5',
         '--dropout_rate=0.3', '--l1_regularizer=0.01', '--l2_regularizer=0.02',
         '--label_smoothing=0.0', '--validation_split=0.3', '--do_data_augmentation',
         '--rotation_range=10', '--horizontal_flip', '--width_shift_range=0.1',
         '--height_shift_range=0.3', '--shear_range=0.1', '--zoom_range=0.4',
         '--set_memory_growth', '--distribution_strategy=mirrored', '--use_tf_data_input',
         '--report', '--report_dir=rep', '--onnx_output_file=m.onnx'],
        ['--do_data_augmentation', '--nohorizontal_flip', '--nodo_fine_tuning',
         '--nouse_tf_data_input'])
    assert defaults == {**defaults, 'tfhub_module':
                        'https://tfhub.dev/google/tf2-preview/mobilenet_v2/feature_vector/4',
                        'epochs': 5, 'batch_size': 32, 'learning_rate': 0.005, 'momentum': 0.9,
                        'dropout_rate': 0.2, 'l1': 0.0, 'l2': 0.0001, 'label_smoothing': 0.1,
                        'validation_split': 0.2, 'fine_tune': False, 'image_size': 0,
                        'assert_accuracy_at_least': None, 'flip_left_right': False,
                        'random_crop': 0, 'random_scale': 0, 'saved_model_dir': '',
                        'tflite_output_file': '', 'output_labels': '', 'summaries_dir': '',
                        'output_graph': '', 'tf_data_split': True, 'report': False,
                        'report_dir': '', 'onnx_output_file': ''}
    assert given == {**given, 'image_dir': 'imgs', 'tfhub_module': 'mod', 'image_size': 96,
                     'saved_model_dir': 'sm', 'tflite_output_file': 'm.tflite',
                     'output_labels': 'l.txt', 'summaries_dir': 'logs',
                     'assert_accuracy_at_least': 0.5, 'epochs': 2, 'fine_tune': True,
                     'batch_size': 8, 'train_batch_size': 8, 'learning_rate': 0.1,
                     'momentum': 0.5, 'dropout_rate': 0.3, 'l1': 0.01, 'l2': 0.02,
                     'label_smoothing': 0.0, 'validation_split': 0.3,
                     'flip_left_right': True, 'random_crop': 30, 'random_scale': 40,
                     'tf_data_split': True, 'report': True, 'report_dir': 'rep',
                     'onnx_output_file': 'm.onnx'}
    # With augmentation, the flip follows its own flag (on by default, off with --no...).
    assert negated['flip_left_right'] is False and negated['random_crop'] == 20
    assert negated['fine_tune'] is False and negated['tf_data_split'] is False


@pytest.mark.parametrize('args, message', [
    (['--validation_split=1'], '--validation_split'),
    (['--train_epochs=0'], '--train_epochs'),
    (['--distribution_strategy=tpu'], 'distribution_strategy'),
    (['--batch_size=x'], 'batch_size'),
    # Keras' SGD refused these; NaN once trained and exported a model that answers NaN.
    (['--momentum=nan'], '--momentum must be from 0 to 1, not nan'),
    (['--momentum=-1'], '--momentum must be from 0 to 1'),
    (['--l2_regularizer=-1'], '--l2_regularizer must be a finite number from 0'),
    (['--l1_regularizer=inf'], '--l1_regularizer must be a finite number from 0'),
    # A gate without validation images could only fail: refused before the training.
    (['--assert_accuracy_at_least=0.5', '--validation_split=0'],
     '--assert_accuracy_at_least needs validation images'),
    (['--assert_accuracy_at_least=nan'], '--assert_accuracy_at_least must be a number, not nan'),
])
def test_bad_values_are_one_line_usage_errors(args, message, tmp_path):
    done = run_module('make_image_classifier', f'--image_dir={tmp_path}', *args, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and 'Traceback' not in done.stderr


def test_a_gate_above_1_fails_as_it_did_but_before_the_training(tmp_path):
    images = make_image_folder(str(tmp_path / 'images'), per_class=2)
    done = run_module('make_image_classifier', f'--image_dir={images}',
                      f'--saved_model_dir={tmp_path / "sm"}', '--assert_accuracy_at_least=1.01',
                      timeout=120)
    assert done.returncode == 1 and 'Traceback' not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        'make_image_classifier: error: ACCURACY FAILED: no accuracy reaches 1.010000; no model '
        'was exported')
    assert 'Epoch' not in done.stderr and not os.path.exists(tmp_path / 'sm')


def test_errors_name_its_flags_not_retrains(tmp_path):
    images = make_image_folder(str(tmp_path / 'images'), per_class=2)
    done = run_module('make_image_classifier', f'--image_dir={images}',
                      f'--labels_output_file={os.path.join(images, "red", "labels.txt")}',
                      timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert '--labels_output_file (' in done.stderr and '--output_labels' not in done.stderr


def test_folder_names_are_its_labels_unchanged_and_must_fit_on_a_line(tmp_path):
    """Its labels were the folder names: 'Roses' and 'roses' are two classes and '___' one
    (retrain's labels would clash or be empty); a name with a line break is refused."""
    colours = {'Roses': (200, 0, 0), 'roses': (0, 200, 0), '___': (0, 0, 200)}
    images = make_image_folder(str(tmp_path / 'images'), per_class=3, colours=colours)
    labels, _ = keras_split.split_examples(images, 0.2)
    assert labels == ['Roses', '___', 'roses']
    os.rename(os.path.join(images, '___'), os.path.join(images, 'two\nlines'))
    with pytest.raises(ToolError, match=r"its name holds a line break"):
        keras_split.split_examples(images, 0.2)


def test_validation_images_are_image_data_generators_first_sorted_slice(tmp_path):
    folder = make_image_folder(str(tmp_path / 'images'), per_class=12,
                               colours={'b': (0, 0, 200), 'a': (200, 0, 0)})
    labels, examples = keras_split.split_examples(folder, 0.2, tf_data=False)
    assert labels == ['a', 'b']
    held_out = [e.location for e in examples if e.split == 'validation']
    assert held_out == [os.path.join(c, f'{c}_{i:03d}.jpg')
                        for c in 'ab' for i in range(2)]  # int(0.2 * 12) == 2 per class.
    assert [e.split for e in examples] == ['training'] * 20 + ['validation'] * 4


def test_image_data_generator_s_tiff_and_ppm_files_are_split_as_it_split_them(tmp_path):
    """Its PIL reader took them; they are listed and split alike (then skipped as unreadable),
    so the other images keep its split."""
    folder = make_image_folder(str(tmp_path / 'images'), per_class=8,
                               colours={'b': (0, 0, 200), 'a': (200, 0, 0)})
    for name in ('a/0.tif', 'a/1.ppm', 'b/0.tiff', 'b/notes.txt'):
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(b'not decoded here')
    _, examples = keras_split.split_examples(folder, 0.2, tf_data=False)
    listed = sorted(e.location for e in examples)
    assert {os.path.join('a', '0.tif'), os.path.join('a', '1.ppm'),
            os.path.join('b', '0.tiff')} <= set(listed)
    assert os.path.join('b', 'notes.txt') not in listed
    assert [e.location for e in examples if e.split == 'validation'] == [
        os.path.join('a', '0.tif'), os.path.join('a', '1.ppm'),  # int(0.2 * 10) == 2
        os.path.join('b', '0.tiff')]  # int(0.2 * 9) == 1


def test_by_default_both_subsets_are_image_dataset_from_directorys(image_dir):
    keras = pytest.importorskip('keras')

    def subset(name, shuffle):  # As it read them: validation unshuffled, training shuffled.
        found = keras.utils.image_dataset_from_directory(
            image_dir, validation_split=0.2, subset=name, seed=keras_split.TF_DATA_SEED,
            shuffle=shuffle, image_size=(8, 8), batch_size=8)
        return sorted(os.path.relpath(path, image_dir) for path in found.file_paths)

    _, examples = keras_split.split_examples(image_dir, 0.2)
    for split, name, shuffle in (('validation', 'validation', False),
                                 ('training', 'training', True)):
        assert sorted(e.location for e in examples if e.split == split) == subset(name, shuffle)


def test_class_folders_without_its_images_stay_classes_as_in_keras(tmp_path):
    """An empty folder, and one of only WebP files (which its readers skipped), were classes
    with no images: an output of its model, a line of its labels file."""
    keras = pytest.importorskip('keras')
    images = make_image_folder(str(tmp_path / 'images'), per_class=5,
                               colours={'b': (0, 0, 200), 'd': (200, 0, 0)})
    os.makedirs(os.path.join(images, 'a_empty'))
    os.makedirs(os.path.join(images, 'c_webp'))
    shutil.copy(os.path.join(images, 'b', 'b_000.jpg'), os.path.join(images, 'c_webp', 'x.webp'))
    labels, examples = keras_split.split_examples(images, 0.2)
    found = keras.utils.image_dataset_from_directory(images, validation_split=0.2,
                                                     subset='validation', seed=123,
                                                     image_size=(8, 8))
    assert labels == found.class_names == ['a_empty', 'b', 'c_webp', 'd']
    assert sorted({e.label for e in examples}) == [1, 3]
    shutil.rmtree(os.path.join(images, 'd'))  # Only one class with images left.
    with pytest.raises(ToolError, match='only one class folder found'):
        keras_split.split_examples(images, 0.2)


@pytest.fixture(scope='module')
def trained(tiny_module, image_dir, tmp_path_factory):
    """One run into folders that do not exist yet; returns (its output folder, the run)."""
    out = tmp_path_factory.mktemp('mic')
    done = run_module(
        'make_image_classifier', f'--image_dir={image_dir}', f'--tfhub_module={tiny_module}',
        f'--saved_model_dir={out / "new" / "saved_model"}',
        f'--tflite_output_file={out / "lite" / "model.tflite"}',
        f'--labels_output_file={out / "labels" / "labels.txt"}',
        f'--summaries_dir={out / "logs"}', f'--bottleneck_dir={out / "cache"}',
        '--train_epochs=10', '--batch_size=8', '--random_seed=1', timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


def _images(image_dir, count=2):
    """Images of each class as its users fed them: float [N, 32, 32, 3] in [0, 1]."""
    images, classes = [], []
    for index, name in enumerate(sorted(os.listdir(image_dir))):
        for file in sorted(os.listdir(os.path.join(image_dir, name)))[:count]:
            data = tf.io.decode_image(tf.io.read_file(os.path.join(image_dir, name, file)),
                                      channels=3, expand_animations=False)
            images.append(tf.image.resize(tf.cast(data, tf.float32) / 255.0, (32, 32)))
            classes.append(index)
    return tf.stack(images), np.array(classes)


def test_log_has_keras_epoch_lines_and_where_outputs_went(trained):
    out, done = trained
    epochs = [line for line in done.stderr.splitlines() if 'val_accuracy:' in line]
    assert len(epochs) == 10 and all(' loss: ' in line and ' accuracy: ' in line
                                    and 'val_loss: ' in line for line in epochs)
    for path in ('saved_model', 'model.tflite', 'labels.txt'):
        assert path in done.stderr
    assert os.listdir(out / 'logs') and sorted(os.listdir(out / 'logs')) == ['train',
                                                                            'validation']
    assert 'Report:' not in done.stderr  # Our additions are off by default.
    # Its own lines and progress bars only: no TensorFlow notices (CUDA probing, the converter).
    for line in done.stderr.splitlines():
        assert (line.startswith('Caching bottlenecks: ')
                or re.match(r'[IWE] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}: \S', line)), line


def test_labels_file_is_one_folder_name_a_line(trained):
    out, _ = trained
    assert (out / 'labels' / 'labels.txt').read_text() == 'blue\ngreen\nred\n'


def test_saved_model_serving_default_gives_probabilities(trained, image_dir):
    out, _ = trained
    loaded = tf.saved_model.load(str(out / 'new' / 'saved_model'))
    serve = loaded.signatures['serving_default']
    images, classes = _images(image_dir)
    assert list(serve.structured_input_signature[1]) == ['input_1']  # Its Keras model's keys.
    assert list(serve.structured_outputs) == ['dense']
    scores = serve(input_1=images)['dense']
    assert scores.shape == (len(classes), 3)
    np.testing.assert_allclose(scores.numpy().sum(axis=1), 1, rtol=1e-5)
    assert (scores.numpy().argmax(axis=1) == classes).all()
    # Called as its saved Keras model was (model(images), hub.load, hub.KerasLayer).
    np.testing.assert_allclose(loaded(images).numpy(), scores.numpy(), rtol=1e-6)
    made_by = classifier.load(str(out / 'new' / 'saved_model')).kind  # inspect's `made by`.
    assert made_by == "make_image_classifier (its Keras model's keys)"
    keras = pytest.importorskip('keras')
    if not hasattr(keras.layers, 'TFSMLayer'):
        pytest.skip('Keras 2: no TFSMLayer')
    layer = keras.layers.TFSMLayer(str(out / 'new' / 'saved_model'),
                                   call_endpoint='serving_default')
    result = layer(images)
    result = next(iter(result.values())) if isinstance(result, dict) else result
    np.testing.assert_allclose(np.asarray(result), scores.numpy(), rtol=1e-5, atol=1e-6)


def test_tflite_takes_one_image_and_agrees(trained, image_dir):
    out, _ = trained
    interpreter = tflite_interpreter(model_path=str(out / 'lite' / 'model.tflite'))
    (feed,), (fetch,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(feed['shape']) == [1, 32, 32, 3] and feed['dtype'] == np.float32
    images, classes = _images(image_dir, count=1)
    for image, expected in zip(images.numpy(), classes):
        interpreter.set_tensor(feed['index'], image[None])
        interpreter.invoke()
        assert interpreter.get_tensor(fetch['index']).argmax() == expected


def test_unmet_accuracy_exits_1_exporting_nothing_from_the_cache(trained, tiny_module,
                                                                image_dir, tmp_path):
    out, _ = trained
    done = run_module(
        'make_image_classifier', f'--image_dir={image_dir}', f'--tfhub_module={tiny_module}',
        f'--saved_model_dir={tmp_path / "sm"}', f'--labels_output_file={tmp_path / "l.txt"}',
        f'--bottleneck_dir={out / "cache"}', '--train_epochs=1', '--batch_size=8',
        '--learning_rate=0.000001', '--random_seed=3', '--assert_accuracy_at_least=1',
        timeout=300)  # Hardly trained: its seeded start gets some validation images wrong.
    assert done.returncode == 1
    assert 'ACCURACY FAILED' in done.stderr and 'Traceback' not in done.stderr
    assert ' 0 to compute' in done.stderr  # Other hyperparameters, the same cached features.
    assert not os.listdir(tmp_path)


def test_each_image_folder_has_its_own_default_cache(tiny_module, tmp_path):
    """Cache files are named by class folder and file name: two folders of different photos
    under the same names must not share features (the second once trained on the first's)."""
    first = make_image_folder(str(tmp_path / 'first'), per_class=4)
    second = make_image_folder(str(tmp_path / 'second'), per_class=4,
                               colours={'red': (0, 0, 200), 'blue': (200, 0, 0)})
    temporary = tmp_path / 'temporary'
    temporary.mkdir()
    for folder in (first, second):
        done = run_module('make_image_classifier', f'--image_dir={folder}',
                          f'--tfhub_module={tiny_module}', '--train_epochs=1',
                          env_extra={'TMPDIR': str(temporary)}, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        cached = re.search(r'(\d+) bottlenecks cached in (\S+) ', done.stderr)
        assert cached.group(1) == '0'  # The second folder's features all computed anew.
        assert os.path.dirname(cached.group(2)) == str(
            temporary / 'make_image_classifier_bottlenecks')
    assert len(os.listdir(temporary / 'make_image_classifier_bottlenecks')) == 2


def test_a_diverging_run_exports_nothing(tiny_module, image_dir, tmp_path):
    done = run_module(
        'make_image_classifier', f'--image_dir={image_dir}', f'--tfhub_module={tiny_module}',
        f'--saved_model_dir={tmp_path / "out" / "sm"}', f'--bottleneck_dir={tmp_path / "bn"}',
        '--learning_rate=1e30', timeout=300)
    assert done.returncode == 1 and 'Traceback' not in done.stderr
    assert 'make_image_classifier: error: training diverged: the loss is' in done.stderr
    assert 'RuntimeWarning' not in done.stderr  # NumPy's overflow lines, with source lines.
    assert not os.path.exists(tmp_path / 'out')


def test_a_gate_with_a_split_holding_no_validation_image_is_refused_before_work(
        tiny_module, tmp_path):
    images = make_image_folder(str(tmp_path / 'images'), per_class=4)
    done = run_module(
        'make_image_classifier', f'--image_dir={images}', f'--tfhub_module={tiny_module}',
        f'--saved_model_dir={tmp_path / "sm"}', f'--bottleneck_dir={tmp_path / "bn"}',
        '--validation_split=0.01', '--assert_accuracy_at_least=0.5', timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        'make_image_classifier: error: --assert_accuracy_at_least needs validation images: '
        '--validation_split 0.01 holds none of these 12 images')
    assert not os.path.exists(tmp_path / 'bn') and not os.path.exists(tmp_path / 'sm')


def test_fine_tuning_with_augmentation_on_the_tiny_module(tiny_module, image_dir, tmp_path):
    done = run_module(
        'make_image_classifier', f'--image_dir={image_dir}', f'--tfhub_module={tiny_module}',
        f'--saved_model_dir={tmp_path / "sm"}', f'--bottleneck_dir={tmp_path / "cache"}',
        '--train_epochs=1', '--batch_size=16', '--do_fine_tuning', '--do_data_augmentation',
        '--distribution_strategy=mirrored', '--shear_range=0.1', timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'Fine-tuning' in done.stderr and 'flip_left_right=True' in done.stderr
    for flag in ('--shear_range', '--rotation_range', '--distribution_strategy'):
        assert done.stderr.count(flag) == 1, flag
    assert tf.saved_model.load(str(tmp_path / 'sm')).signatures['serving_default']


def test_our_additions_when_asked_a_report_and_onnx_agreeing_with_its_saved_model(
        trained, tiny_module, image_dir, tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime', reason='the onnx extra is not installed')
    out, _ = trained
    done = run_module(
        'make_image_classifier', f'--image_dir={image_dir}', f'--tfhub_module={tiny_module}',
        f'--saved_model_dir={tmp_path / "sm"}', f'--onnx_output_file={tmp_path / "m.onnx"}',
        f'--report_dir={tmp_path / "report"}', '--report', f'--bottleneck_dir={out / "cache"}',
        '--train_epochs=10', '--batch_size=8', '--random_seed=1', timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'Report: ' in done.stderr and ' 0 to compute' in done.stderr
    with open(tmp_path / 'report' / 'report.json', encoding='utf-8') as f:
        report = json.load(f)
    assert [c['label'] for c in report['per_class']] == ['blue', 'green', 'red']
    assert report['splits']['training'] + report['splits']['validation'] == 90
    assert (tmp_path / 'report' / 'index.html').is_file()
    images, classes = _images(image_dir)
    session = onnxruntime.InferenceSession(str(tmp_path / 'm.onnx'),
                                           providers=['CPUExecutionProvider'])
    scores = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    served = tf.saved_model.load(str(tmp_path / 'sm')).signatures['serving_default']
    np.testing.assert_allclose(scores, served(input_1=images)['dense'].numpy(), atol=1e-5)
    assert (scores.argmax(axis=1) == classes).all()
