"""`python -m retrain` / `retrain`: the classic command line, parsed once, then handed on.

Every flag of the classic scripts is accepted with its classic default, in both `--flag=value`
and `--flag value` form. Usage errors (an unknown flag, a value of the wrong type, a nonsense
number) end the run before any work with one line and exit code 2; other errors the user can fix
with one line and exit code 1; Ctrl-C, even while TensorFlow is still being imported, with one
line and exit code 130. None shows a traceback or leaves partial outputs.
"""
import dataclasses
import sys
from typing import Optional, Sequence

from absl import app, flags, logging

from retrain.common import interrupts, logs
from retrain.common.cli_args import error
from retrain.common.errors import ConfigError, ToolError, exit_as_the_reader_left
from retrain.common.quiet_tensorflow import import_tensorflow
from retrain.config import RetrainConfig

FLAGS = flags.FLAGS
# The first lines of --help (absl shows the main module's docstring there).
USAGE = ('Retrains the last layer of an image model on folders of your own images.\n\n'
         'usage: retrain --image_dir DIR [flags]   (or: python -m retrain ...)\n')
# absl's definer for each type of setting (RetrainConfig's field types).
_DEFINERS = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float,
             bool: flags.DEFINE_boolean, Optional[int]: flags.DEFINE_integer}


def _define_flags() -> None:
    """A flag for every documented setting of RetrainConfig, with its default and help."""
    for field in dataclasses.fields(RetrainConfig):
        if 'help' not in field.metadata:
            continue
        help_text, choices = field.metadata['help'], field.metadata.get('choices')
        if choices:
            flags.DEFINE_enum(field.name, field.default, list(choices), help_text)
        elif field.type == Sequence[str]:
            flags.DEFINE_list(field.name, list(field.default), help_text)
        else:
            _DEFINERS[field.type](field.name, field.default, help_text)
    flags.DEFINE_enum('logging_verbosity', 'INFO', list(logs.LEVELS),
                      'How much logging output should be produced.')


_define_flags()
_HELP_FLAGS = {'-h', '-?', '--help', '--helpshort', '--helpfull', '--helpxml'}


def config_from_flags() -> RetrainConfig:
    """The run's settings from the parsed flags; legacy mode as the classic scripts chose it, and
    whether split percentages were given (which --split_folders refuses, even at their default)."""
    values = {field: FLAGS[field].value for field in RetrainConfig.__dataclass_fields__
              if field in FLAGS}
    legacy = ((FLAGS['model_dir'].present or FLAGS['architecture'].present)
              and not FLAGS['tfhub_module'].present)
    percentages = FLAGS['testing_percentage'].present or FLAGS['validation_percentage'].present
    return RetrainConfig(**values, use_legacy_model=legacy, percentages_given=bool(percentages))


def main(argv) -> int:
    if len(argv) > 1:
        print(f'retrain: error: unexpected arguments: {" ".join(argv[1:])}', file=sys.stderr)
        return 2
    logs.setup(FLAGS.logging_verbosity)
    interrupts.install('retrain: interrupted; outputs already complete were kept, nothing is '
                       'half-written')
    try:
        config = config_from_flags()  # Checked now, before the slow TensorFlow import.
        import_tensorflow(debug=FLAGS.logging_verbosity == 'DEBUG')
        from retrain import pipeline
        if config.use_legacy_model:  # A name without a model: a usage error, before any work.
            from retrain.features import legacy_models
            legacy_models.architecture_info(config.architecture)
        _warn_of_flags_without_effect(config)
        if not config.image_dir:
            from retrain.common import downloads
            config = dataclasses.replace(config, image_dir=downloads.flower_photos())
            logging.info('No --image_dir given: using the flower photos in %s', config.image_dir)
        pipeline.run(config)
    except ToolError as e:
        error('retrain', e)
        return 2 if isinstance(e, ConfigError) else 1
    except KeyboardInterrupt:
        interrupts.end_interrupted()  # The line given to install, once; exit code 130.
    return 0


def _warn_of_flags_without_effect(config: RetrainConfig) -> None:
    """A flag given that changes nothing is said once, never silently dropped."""
    ignored = [f'--{name}' for name in ('architecture', 'model_dir') if FLAGS[name].present]
    if ignored and not config.use_legacy_model:
        logging.warning('--tfhub_module is given: ignoring %s', ' and '.join(ignored))
    for flag, needs in (('tflite_quantize', 'tflite_output_file'),
                        ('beam_pipeline_options', 'beam_runner')):
        if FLAGS[flag].present and not getattr(config, needs):
            logging.warning('--%s has no effect without --%s', flag, needs)
    for flag, output in (('output_graph', 'graph'), ('output_labels', 'labels file')):
        if not getattr(config, flag):
            logging.warning('--%s is empty: no %s is written', flag, output)


def _parse_flags(argv):
    """absl's parsing, but a bad flag is a usage error like the others: one line, exit code 2."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        error('retrain', e)
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
