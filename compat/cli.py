"""`python -m compat inspect GRAPH` and `python -m compat convert GRAPH --labels L
--saved_model_dir D [--tflite_output_file F] [--onnx_output_file F]`.

Errors the user can fix are one line and exit code 1, as in the other commands.
"""
import argparse
from typing import Sequence

from retrain.common.cli_args import (
    OneLineParser,
    add_override_arguments,
    error,
    override_size,
    run_main,
)
from retrain.common.quiet_tensorflow import import_tensorflow
from retrain.config import extra_installed

_PROGRAM = 'python -m compat'


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=_PROGRAM, description='Inspect and convert retrained '
                                     'graphs of every generation.')
    commands = parser.add_subparsers(dest='command', required=True)
    inspect = commands.add_parser('inspect', help='entry points, output, input size, '
                                  'preprocessing, op counts and unsafe ops of a model')
    convert = commands.add_parser('convert', help='migrate a frozen graph to a TF2 SavedModel '
                                  '(image in [0, 1] -> prediction) and optionally TFLite')
    for command in (inspect, convert):
        command.add_argument('graph', help='frozen graph (.pb); inspect also takes a SavedModel '
                             'folder, a .tflite or an .onnx file')
        add_override_arguments(command.add_argument_group('classic overrides (never needed)'))
    convert.add_argument('--labels', required=True, help='the graph\'s labels file')
    convert.add_argument('--saved_model_dir', required=True, help='where to write the SavedModel')
    convert.add_argument('--tflite_output_file', default='', help='also write a .tflite file')
    convert.add_argument('--onnx_output_file', default='',
                         help='also write an .onnx file (needs the onnx extra)')
    convert.add_argument('--allow_unsafe_ops', action='store_true',
                         help='convert graphs with ops that can touch files, network or host')
    return parser


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == 'convert' and args.onnx_output_file and not extra_installed('onnx'):
        parser.error("--onnx_output_file needs the onnx extra: pip install '.[onnx]'")
    import_tensorflow()  # Quietly: without its start-up chatter on stderr.
    from compat import classifier, convert, inspection
    from retrain.common.errors import ConfigError, ToolError
    overrides = classifier.Overrides.from_args(args, override_size(parser, args))
    try:
        if args.command == 'inspect':
            print(inspection.inspect(args.graph, overrides))
        else:
            model = convert.convert(args.graph, args.labels, args.saved_model_dir,
                                    args.tflite_output_file, overrides, args.allow_unsafe_ops,
                                    args.onnx_output_file)
            print(f'wrote {args.saved_model_dir}: {model.spec.describe()} -> prediction')
            for written in (args.tflite_output_file, args.onnx_output_file):
                if written:
                    print(f'wrote {written}')
    except ConfigError as e:  # Paths that clash: a usage error, as in retrain.
        parser.error(str(e))
    except ToolError as e:
        return error(f'{_PROGRAM} {args.command}', e)
    return 0


def run() -> None:
    run_main(_PROGRAM, main)
