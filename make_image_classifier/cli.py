"""`make_image_classifier` / `python -m make_image_classifier`: TF Hub's tool's command line,
unchanged (absl flags: `--flag=value`, `--flag value`, `--flag` / `--noflag`), parsed once into a
run.Job. Its defaults are its own; flags that cannot mean here what they meant say so once.

Exit codes as retrain's: 2 for a bad command line, 1 for other errors (and for
--assert_accuracy_at_least not met, where it raised), 130 for Ctrl-C; no traceback.
"""
import dataclasses
import functools
import hashlib
import os
import re
import sys
import tempfile

from absl import app, flags, logging

from retrain.common import interrupts, logs
from retrain.common.cli_args import error
from retrain.common.errors import ConfigError, ToolError, exit_as_the_reader_left
from retrain.common.quiet_tensorflow import import_tensorflow

DEFAULT_MODULE = 'https://tfhub.dev/google/tf2-preview/mobilenet_v2/feature_vector/4'
USAGE = ('Trains an image classifier on folders of images, as TF Hub\'s make_image_classifier '
         'did.\n\nusage: make_image_classifier --image_dir DIR [flags]\n')

# Its own flag set: retrain's flags share names with these, and both CLIs load in one process
# (the packaging test imports every console script).
FLAGS = flags.FlagValues()
_string, _integer, _float, _bool, _enum = (
    functools.partial(definer, flag_values=FLAGS) for definer in (
        flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float, flags.DEFINE_bool,
        flags.DEFINE_enum))
_string('image_dir', None, 'A directory with subdirectories of images, one per class. '
        'If unset, the TensorFlow Flowers example dataset is used.')
_string('tfhub_module', DEFAULT_MODULE, 'Which image feature extractor to use: a '
        'TF Hub handle or the folder of a TF2 SavedModel.')
_integer('image_size', None, 'The height and width of images to feed into '
         '--tfhub_module (only for modules of variable input size).')
_string('saved_model_dir', None, 'The final model is exported as a SavedModel '
        'directory with this name.')
_string('tflite_output_file', None, 'The final model is exported as a .tflite '
        'flatbuffers file with this name.')
_string('labels_output_file', None, 'Where to save the labels (the names of the '
        'image subdirectories), in the order of the model\'s predictions.')
_string('summaries_dir', None, 'Where to save TensorBoard summaries.')
_float('assert_accuracy_at_least', None, 'If set, fail (and export nothing) when the '
       'validation accuracy at the end of training is below this number (0 to 1).')
_integer('train_epochs', 5, 'Training does this many passes over the training '
         'images.')
_bool('do_fine_tuning', False, 'Also train the --tfhub_module with the new layer.')
_integer('batch_size', 32, 'How many images each training step takes.')
_float('learning_rate', 0.005, 'The learning rate of gradient descent.')
_float('momentum', 0.9, 'The momentum of gradient descent.')
_float('dropout_rate', 0.2, 'The fraction of the features dropped in training.')
_float('l1_regularizer', 0.0, 'L1 penalty on the new layer\'s weights.')
_float('l2_regularizer', 0.0001, 'L2 penalty on the new layer\'s weights.')
_float('label_smoothing', 0.1, 'The amount of label smoothing of the loss.')
_float('validation_split', 0.2, 'The fraction of each class held out for '
       'validation.')
_bool('do_data_augmentation', False, 'Train on randomly distorted images.')
_integer('rotation_range', 40, 'Augmentation: rotation range in degrees (not done '
         'here; see the log).')
_bool('horizontal_flip', True, 'Augmentation: mirror images at random.')
_float('width_shift_range', 0.2, 'Augmentation: horizontal shift, a fraction of the '
       'width.')
_float('height_shift_range', 0.2, 'Augmentation: vertical shift, a fraction of the '
       'height.')
_float('shear_range', 0.0, 'Augmentation: shear (not done here; see the log).')
_float('zoom_range', 0.2, 'Augmentation: zoom range.')
_bool('set_memory_growth', False, 'Let GPU memory grow as needed.')
_enum('distribution_strategy', None, ['', 'mirrored'], 'Distribution strategy (the '
      'head trains on the CPU here; see the log).')
_bool('use_tf_data_input', None, 'Which of its readers\' validation split to take: tf.data\'s '
      '(unset, as it did on TensorFlow >= 2.5, or true) or ImageDataGenerator\'s (false).')
# Our additions, off or neutral by default so its command lines behave as before.
_string('bottleneck_dir', None, 'Where image features are cached; a second run reuses them. '
        'Default: a folder of the temporary folder for each --image_dir.')
_integer('random_seed', None, 'Seed for all randomness, for identical runs.')
_enum('logging_verbosity', 'INFO', list(logs.LEVELS),
      'How much logging output should be produced.')
_bool('report', False, 'Log duplicates, validation leaks and suspected label errors found in '
      'the image features, as retrain does (about a second).')
_string('report_dir', None, 'Also write that run report here: index.html (opens from disk) and '
        'report.json. A new or empty folder, or an old report.')
_string('onnx_output_file', None, 'Also write the classifier as ONNX here (needs the onnx '
        'extra): float images [N, size, size, 3] in [0, 1] -> probabilities.')

_HELP_FLAGS = {'-h', '-?', '--help', '--helpshort', '--helpfull', '--helpxml'}


def _percent(fraction: float) -> int:
    return int(round(fraction * 100))


def _notes() -> None:
    """One line for each flag given that cannot mean here what it meant."""
    given = {name for name in FLAGS if FLAGS[name].present}
    augment = FLAGS.do_data_augmentation
    if augment and FLAGS.rotation_range:
        logging.warning('--rotation_range=%d: rotations are not done here; the other '
                        'augmentations are', FLAGS.rotation_range)
    if augment and FLAGS.shear_range:
        logging.warning('--shear_range=%g is ignored: shearing is not done here (its tf.data '
                        'reader, the default, refused it)', FLAGS.shear_range)
    if augment and FLAGS.width_shift_range != FLAGS.height_shift_range:
        logging.warning('--width_shift_range and --height_shift_range: one random crop margin '
                        'of the larger (%d%%) shifts both ways', _percent(
                            max(FLAGS.width_shift_range, FLAGS.height_shift_range)))
    if not augment and given & {'rotation_range', 'horizontal_flip', 'width_shift_range',
                                'height_shift_range', 'shear_range', 'zoom_range'}:
        logging.warning('augmentation flags given without --do_data_augmentation are unused, '
                        'as before')
    if FLAGS.distribution_strategy:
        logging.warning('--distribution_strategy=%s: the new layer trains on cached features '
                        'on one device; the flag is ignored', FLAGS.distribution_strategy)


def job_from_flags():
    """The run.Job of the parsed flags: the flags' own rules are checked here, RetrainConfig
    checks the rest (TensorFlow is imported by then: run.Job's settings need it)."""
    if not 0 <= FLAGS.validation_split < 1:
        raise ConfigError(f'--validation_split must be from 0 to below 1, not '
                          f'{FLAGS.validation_split}')
    for name in ('train_epochs', 'batch_size'):
        if FLAGS[name].value < 1:
            raise ConfigError(f'--{name} must be at least 1, not {FLAGS[name].value}')
    if not 0 <= FLAGS.dropout_rate < 1 or not 0 <= FLAGS.label_smoothing <= 1:
        raise ConfigError('--dropout_rate must be from 0 to below 1 and --label_smoothing from '
                          '0 to 1')
    from make_image_classifier.run import AccuracyFailed, Job
    gate = FLAGS.assert_accuracy_at_least
    if gate is not None and gate != gate:  # NaN: no accuracy passes or fails it.
        raise ConfigError('--assert_accuracy_at_least must be a number, not nan')
    if gate is not None and gate > 1:  # Its failure, with its exit code, before the training.
        raise AccuracyFailed(f'ACCURACY FAILED: no accuracy reaches {gate:f}; no model was '
                             'exported')
    if gate and not FLAGS.validation_split:
        raise ConfigError('--assert_accuracy_at_least needs validation images: '
                          '--validation_split above 0')
    if not 0 <= FLAGS.momentum <= 1:  # Keras' SGD refused others; NaN trained a NaN model.
        raise ConfigError(f'--momentum must be from 0 to 1, not {FLAGS.momentum}')
    for name in ('l1_regularizer', 'l2_regularizer'):
        if not 0 <= FLAGS[name].value < float('inf'):
            raise ConfigError(f'--{name} must be a finite number from 0, not {FLAGS[name].value}')
    from retrain.config import RetrainConfig
    from retrain.train.keras_head import HeadSettings
    augment = FLAGS.do_data_augmentation
    config = RetrainConfig(
        image_dir=FLAGS.image_dir or '', tfhub_module=FLAGS.tfhub_module,
        image_size=FLAGS.image_size or 0, saved_model_dir=FLAGS.saved_model_dir or '',
        tflite_output_file=FLAGS.tflite_output_file or '',
        output_labels=FLAGS.labels_output_file or '', summaries_dir=FLAGS.summaries_dir or '',
        output_graph='', bottleneck_dir=_cache(FLAGS.image_dir),
        learning_rate=FLAGS.learning_rate,
        train_batch_size=FLAGS.batch_size, random_seed=FLAGS.random_seed,
        report=FLAGS.report, report_dir=FLAGS.report_dir or '',
        onnx_output_file=FLAGS.onnx_output_file or '',
        flip_left_right=augment and FLAGS.horizontal_flip,
        random_crop=_percent(max(FLAGS.width_shift_range, FLAGS.height_shift_range))
        if augment else 0,
        random_scale=_percent(FLAGS.zoom_range) if augment else 0)
    head = HeadSettings(FLAGS.train_epochs, FLAGS.batch_size, FLAGS.learning_rate,
                        FLAGS.momentum, FLAGS.dropout_rate, FLAGS.l1_regularizer,
                        FLAGS.l2_regularizer, FLAGS.label_smoothing)
    return Job(config, head, FLAGS.validation_split, FLAGS.assert_accuracy_at_least,
               FLAGS.do_fine_tuning, FLAGS.use_tf_data_input is not False)


def _cache(image_dir: str) -> str:
    """--bottleneck_dir, or where not given, a folder of the temporary folder for `image_dir`
    (cache files are named by class folder and file name, so two image folders sharing one
    cache would be given each other's features); for no image_dir yet, their parent folder,
    replaced once the flower photos are in place."""
    if FLAGS.bottleneck_dir:
        return FLAGS.bottleneck_dir
    caches = os.path.join(tempfile.gettempdir(), 'make_image_classifier_bottlenecks')
    if not image_dir:
        return caches
    where = os.path.realpath(image_dir)
    return os.path.join(caches, f'{os.path.basename(where)}_'
                                f'{hashlib.sha1(os.fsencode(where)).hexdigest()[:12]}')


# Errors of retrain's library name its flags; where this tool's differ, they are said its way.
_FLAG_NAMES = {'--output_labels': '--labels_output_file', '--train_batch_size': '--batch_size'}


def _in_our_words(message: str) -> str:
    return re.sub('|'.join(map(re.escape, _FLAG_NAMES)) + r'\b',
                  lambda found: _FLAG_NAMES[found.group(0)], message)


def _memory_growth() -> None:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices('GPU')
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if not gpus:
        logging.warning('--set_memory_growth: no GPU is visible; nothing to set')


def main(argv) -> int:
    if len(argv) > 1:
        print(f'make_image_classifier: error: unexpected arguments: {" ".join(argv[1:])}',
              file=sys.stderr)
        return 2
    logs.setup(FLAGS.logging_verbosity)
    interrupts.install('make_image_classifier: interrupted; nothing was half-written')
    try:
        # First, quietly: the job's settings (retrain.train.keras_head) import TensorFlow.
        import_tensorflow(debug=FLAGS.logging_verbosity == 'DEBUG')
        job = job_from_flags()
        _notes()
        if FLAGS.set_memory_growth:
            _memory_growth()
        from make_image_classifier import run as runner
        if not job.config.image_dir:
            from retrain.common import downloads
            image_dir = downloads.flower_photos()
            job = dataclasses.replace(job, config=dataclasses.replace(
                job.config, image_dir=image_dir, bottleneck_dir=_cache(image_dir)))
            logging.info('No --image_dir given, using the flower photos in %s', image_dir)
        runner.run(job)
    except ToolError as e:
        error('make_image_classifier', _in_our_words(str(e)))
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        interrupts.end_interrupted()
    return 0


def _parse_flags(argv):
    """These flags, then absl's own (logging) on what is left; `--help` lists these and exits 0;
    a bad flag is a usage error: one line, exit code 2."""
    if _HELP_FLAGS & set(argv[1:]):
        print(USAGE)
        print(FLAGS.get_help())
        sys.exit(0)
    try:
        return flags.FLAGS(FLAGS(argv, known_only=True))
    except flags.Error as e:
        error('make_image_classifier', e)
        sys.exit(2)


def run() -> None:
    """Console-script entry point."""
    try:
        app.run(main, flags_parser=_parse_flags)
    except BrokenPipeError:
        exit_as_the_reader_left()
