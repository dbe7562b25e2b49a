"""`python -m retrain` / `retrain`: the classic command line, parsed once, then handed on.

Every flag of the classic scripts is accepted with its classic default, in both `--flag=value`
and `--flag value` form. Usage errors (an unknown flag, a value of the wrong type, a nonsense
number) end the run before any work with one line and exit code 2; other errors the user can fix
with one line and exit code 1; Ctrl-C, even while TensorFlow is still being imported, with one
line and exit code 130. None shows a traceback or leaves partial outputs.
"""
import sys

from absl import app, flags, logging

from retrain.config import DEFAULT_TFHUB_MODULE, ConfigError, RetrainConfig
from retrain.common import interrupts, logs
from retrain.common.errors import RetrainError, exit_as_the_reader_left
from retrain.common.quiet_tensorflow import import_tensorflow

_D = RetrainConfig()
FLAGS = flags.FLAGS
# The first lines of --help (absl shows the main module's docstring there).
USAGE = ('Retrains the last layer of an image model on folders of your own images.\n\n'
         'usage: retrain --image_dir DIR [flags]   (or: python -m retrain ...)\n')

flags.DEFINE_string('image_dir', _D.image_dir, 'Path to folders of labeled images; each sub-folder '
                    'is a class. If empty, TensorFlow\'s flower_photos is downloaded and used.')
flags.DEFINE_string('output_graph', _D.output_graph, 'Where to save the trained graph.')
flags.DEFINE_string('intermediate_output_graphs_dir', _D.intermediate_output_graphs_dir,
                    'Where to save the intermediate graphs.')
flags.DEFINE_integer('intermediate_store_frequency', _D.intermediate_store_frequency,
                     'How many steps to store intermediate graph. If 0, none are stored.')
flags.DEFINE_string('output_labels', _D.output_labels, 'Where to save the trained graph\'s labels.')
flags.DEFINE_string('summaries_dir', _D.summaries_dir, 'Where to save summary logs for '
                    'TensorBoard (cleared at the start of a run).')
flags.DEFINE_integer('how_many_training_steps', _D.how_many_training_steps,
                     'How many training steps to run before ending. 0: only fill the '
                     'bottleneck cache; no model or other output is written.')
flags.DEFINE_float('learning_rate', _D.learning_rate, 'How large a learning rate to use.')
flags.DEFINE_integer('testing_percentage', _D.testing_percentage,
                     'What percentage of images to use as a test set.')
flags.DEFINE_integer('validation_percentage', _D.validation_percentage,
                     'What percentage of images to use as a validation set.')
flags.DEFINE_integer('eval_step_interval', _D.eval_step_interval,
                     'How often to evaluate the training results.')
flags.DEFINE_integer('train_batch_size', _D.train_batch_size,
                     'How many images to train on at a time.')
flags.DEFINE_integer('test_batch_size', _D.test_batch_size,
                     'How many images to test on. -1 means the entire test set.')
flags.DEFINE_integer('validation_batch_size', _D.validation_batch_size,
                     'How many images to use in an evaluation batch. -1 means the entire '
                     'validation set.')
flags.DEFINE_boolean('print_misclassified_test_images', _D.print_misclassified_test_images,
                     'Whether to print out a list of all misclassified test images.')
flags.DEFINE_string('bottleneck_dir', _D.bottleneck_dir, 'Path to cache bottleneck layer values '
                    'as files.')
flags.DEFINE_string('final_tensor_name', _D.final_tensor_name,
                    'The name of the output classification layer in the retrained graph.')
flags.DEFINE_boolean('flip_left_right', _D.flip_left_right,
                     'Whether to randomly flip half of the training images horizontally.')
flags.DEFINE_integer('random_crop', _D.random_crop, 'A percentage determining how much of a '
                     'margin to randomly crop off the training images.')
flags.DEFINE_integer('random_scale', _D.random_scale, 'A percentage determining how much to '
                     'randomly scale up the size of the training images by.')
flags.DEFINE_integer('random_brightness', _D.random_brightness, 'A percentage determining how '
                     'much to randomly multiply the training image input pixels up or down by.')
flags.DEFINE_string('tfhub_module', DEFAULT_TFHUB_MODULE, 'Which TensorFlow Hub image feature '
                    'vector module to use: a URL, a local folder or a local .tar.gz.')
flags.DEFINE_string('saved_model_dir', _D.saved_model_dir,
                    'Where to save the exported SavedModel for TF Serving (none if empty).')
flags.DEFINE_enum('logging_verbosity', 'INFO', list(logs.LEVELS),
                  'How much logging output should be produced.')
flags.DEFINE_string('checkpoint_path', _D.checkpoint_path, 'Accepted for compatibility; training '
                    'runs in memory and writes no checkpoint.')
flags.DEFINE_string('model_dir', _D.model_dir, 'Legacy mode: folder holding (or receiving) the '
                    'classic frozen-graph archive of --architecture.')
flags.DEFINE_string('architecture', _D.architecture, 'Legacy mode: inception_v3 or '
                    'mobilenet_<1.0|0.75|0.50|0.25>_<224|192|160|128>[_quantized].')
flags.DEFINE_integer('random_seed', None, 'Seed for all randomness; set it for identical runs.')
flags.DEFINE_integer('image_size', _D.image_size, 'Input size for modules whose input size is '
                     'not fixed (default 224).')
flags.DEFINE_integer('cache_batch_size', _D.cache_batch_size,
                     'How many images to run through the model at once while caching '
                     '(32 suits CPUs; on a GPU, 64 or more).')
flags.DEFINE_boolean('allow_truncated_images', _D.allow_truncated_images,
                     'Use what a truncated JPEG holds (at least 10% of its rows, the rest gray) '
                     'instead of skipping it.')
flags.DEFINE_string('tflite_output_file', _D.tflite_output_file, 'Also write the classifier as '
                    'TensorFlow Lite here: float image [1, H, W, 3] in [0, 1] in, softmax out.')
flags.DEFINE_enum('tflite_quantize', _D.tflite_quantize, ['none', 'dynamic', 'int8'],
                  'Quantization of --tflite_output_file: dynamic (int8 weights) or int8 '
                  '(weights and activations, calibrated on training images).')
flags.DEFINE_integer('fine_tune_steps', _D.fine_tune_steps, 'After training the new layer, train '
                     'it together with the module\'s own variables for this many steps.')
flags.DEFINE_float('fine_tune_learning_rate', _D.fine_tune_learning_rate,
                   'Learning rate of the --fine_tune_steps steps.')
flags.DEFINE_string('beam_runner', _D.beam_runner, 'Compute the bottleneck cache with an Apache '
                    'Beam pipeline on this runner (DirectRunner, DataflowRunner, FlinkRunner, '
                    'SparkRunner ...); needs the beam extra. Empty: compute in this process.')
flags.DEFINE_list('beam_pipeline_options', list(_D.beam_pipeline_options), 'Comma-separated Beam '
                  'pipeline options for --beam_runner, e.g. --beam_pipeline_options='
                  '--project=p,--region=r,--temp_location=gs://b/tmp')
flags.DEFINE_boolean('report', _D.report, 'Log duplicates, split leaks and suspected label '
                     'errors found in the bottlenecks (about a second); --noreport skips it.')
flags.DEFINE_string('report_dir', _D.report_dir, 'Also write the run report here: index.html '
                    '(opens from disk) and report.json. A new or empty folder, or an old report.')
flags.DEFINE_boolean('multi_label', _D.multi_label, 'Train a sigmoid per label (an image may have '
                     'several labels): an image file in several class folders has all their '
                     'labels, or see --image_labels_dir and --image_labels_file.')
flags.DEFINE_string('image_labels_dir', _D.image_labels_dir, 'With --multi_label: folder of '
                    '<image file name>.txt files, one label a line (the Multi-label-Inception-net '
                    'fork\'s layout); folders then only hold images.')
flags.DEFINE_string('image_labels_file', _D.image_labels_file, 'With --multi_label: a UTF-8 CSV '
                    'of rows path/relative/to/image_dir.jpg,label1;label2 (header optional).')

_HELP_FLAGS = {'-h', '-?', '--help', '--helpshort', '--helpfull', '--helpxml'}


def config_from_flags() -> RetrainConfig:
    """The run's settings from the parsed flags; legacy mode as the classic scripts chose it."""
    values = {field: FLAGS[field].value for field in RetrainConfig.__dataclass_fields__
              if field in FLAGS}
    legacy = ((FLAGS['model_dir'].present or FLAGS['architecture'].present)
              and not FLAGS['tfhub_module'].present)
    return RetrainConfig(**values, use_legacy_model=legacy)


def main(argv) -> int:
    if len(argv) > 1:
        print(f'retrain: error: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
        return 2
    logs.setup(FLAGS.logging_verbosity)
    interrupts.install()
    try:
        config = config_from_flags()
        config.check()  # Before the slow TensorFlow import: usage errors are instant.
        import_tensorflow(debug=FLAGS.logging_verbosity == 'DEBUG')
        from retrain import pipeline  # pylint: disable=import-outside-toplevel
        if not config.image_dir:
            from retrain.common import downloads  # pylint: disable=import-outside-toplevel
            config.image_dir = downloads.flower_photos()
            logging.info('No --image_dir given: using the flower photos in %s', config.image_dir)
        pipeline.run(config)
    except RetrainError as e:
        print(f'retrain: error: {e}', file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        print('retrain: interrupted; outputs already complete were kept, nothing is half-written',
              file=sys.stderr)
        return 130
    return 0


def _parse_flags(argv):
    """absl's parsing, but a bad flag is a usage error like the others: one line, exit code 2."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f'retrain: error: {e}', file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """Console-script entry point: `--help` starts with USAGE and lists these flags whatever the
    program is called, and exits 0 (absl's own help flags exit 1)."""
    sys.modules['__main__'].__doc__ = USAGE
    for flag in FLAGS.get_flags_for_module(__name__):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    try:
        app.run(main, flags_parser=_parse_flags)
    except SystemExit as e:
        if e.code == 1 and _HELP_FLAGS & set(sys.argv[1:]):
            sys.exit(0)
        raise
    except BrokenPipeError:  # `retrain --help | head`: the reader has seen enough.
        exit_as_the_reader_left()
