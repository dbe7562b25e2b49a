"""`python -m compat inspect GRAPH` and `python -m compat convert GRAPH --labels L
--saved_model_dir D [--tflite_output_file F]`.

Errors the user can fix are one line and exit code 1, as in the other commands.
"""
import argparse
import math
import sys
from typing import Callable, Optional, Sequence, Tuple

from retrain.common import interrupts
from retrain.common.errors import exit_as_the_reader_left
from retrain.common.quiet_tensorflow import import_tensorflow

_PROGRAM = 'python -m compat'


def add_override_arguments(parser) -> None:
    """The classic label_image flags that override what is detected (never needed)."""
    parser.add_argument('--input_layer', help='entry tensor, e.g. input or Placeholder')
    parser.add_argument('--output_layer', help='output tensor, e.g. final_result')
    parser.add_argument('--input_mean', type=_finite, help='pixel value mapped to 0')
    parser.add_argument('--input_std', type=_nonzero, help='pixel range mapped to 1')


def number(text: str, kind: type = float):
    """`text` as a number of `kind`; argparse's message says what was wanted (by default it
    names this function)."""
    try:
        return kind(text)
    except ValueError:
        wanted = 'a whole number' if kind is int else 'a number'
        raise argparse.ArgumentTypeError(f'must be {wanted}, not {text!r}') from None


def _finite(text: str) -> float:
    value = number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'must be a finite number, not {text}')
    return value


def _nonzero(text: str) -> float:
    value = _finite(text)
    if value == 0:
        raise argparse.ArgumentTypeError('must not be 0: pixel values are divided by it')
    return value


def overrides_from(args: argparse.Namespace, size: Optional[Tuple[int, int]] = None):
    """The classic override flags (add_override_arguments) as classifier.Overrides."""
    from compat import classifier  # pylint: disable=import-outside-toplevel
    return classifier.Overrides(args.input_layer, args.output_layer, size, args.input_mean,
                                args.input_std)


def error(program: str, message: object) -> int:
    """Says what went wrong in one line on stderr; returns the exit code of runtime errors."""
    print(f'{program}: error: {message}', file=sys.stderr)
    return 1


def run_main(program: str, main: Callable[[Sequence[str]], int]) -> None:
    """Console-script entry point: UTF-8 output (labels and paths), even when redirected; exit
    with main's code, 130 on Ctrl-C, 1 when the reader of the output went away (`| head`).

    A file name that is not valid UTF-8 is printed as its own bytes (as ls does), and escaped
    in messages."""
    for stream, errors in ((sys.stdout, 'surrogateescape'), (sys.stderr, 'backslashreplace')):
        if hasattr(stream, 'reconfigure'):
            stream.reconfigure(encoding='utf-8', errors=errors)
    interrupts.install()  # Ctrl-C ends it with one line, as it does retrain.
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print(f'{program}: interrupted', file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # The reader has seen enough.
        exit_as_the_reader_left()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_PROGRAM, description='Inspect and convert retrained '
                                     'graphs of every generation.')
    commands = parser.add_subparsers(dest='command', required=True)
    inspect = commands.add_parser('inspect', help='entry points, output, input size, '
                                  'preprocessing, op counts and unsafe ops of a model')
    convert = commands.add_parser('convert', help='migrate a frozen graph to a TF2 SavedModel '
                                  '(image in [0, 1] -> prediction) and optionally TFLite')
    for command in (inspect, convert):
        command.add_argument('graph', help='frozen graph (.pb); inspect also takes a SavedModel '
                             'folder or a .tflite file')
        add_override_arguments(command.add_argument_group('classic overrides (never needed)'))
    convert.add_argument('--labels', required=True, help='the graph\'s labels file')
    convert.add_argument('--saved_model_dir', required=True, help='where to write the SavedModel')
    convert.add_argument('--tflite_output_file', default='', help='also write a .tflite file')
    convert.add_argument('--allow_unsafe_ops', action='store_true',
                         help='convert graphs with ops that can touch files, network or host')
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    import_tensorflow()  # Quietly: without its start-up chatter on stderr.
    from compat import convert, inspection  # pylint: disable=import-outside-toplevel
    from retrain.common.errors import RetrainError  # pylint: disable=import-outside-toplevel
    overrides = overrides_from(args)
    try:
        if args.command == 'inspect':
            print(inspection.inspect(args.graph, overrides))
        else:
            model = convert.convert(args.graph, args.labels, args.saved_model_dir,
                                    args.tflite_output_file, overrides, args.allow_unsafe_ops)
            print(f'wrote {args.saved_model_dir}: {model.spec.describe()} -> prediction')
            if args.tflite_output_file:
                print(f'wrote {args.tflite_output_file}')
    except RetrainError as e:
        return error(f'{_PROGRAM} {args.command}', e)
    return 0


def run() -> None:
    run_main(_PROGRAM, main)
