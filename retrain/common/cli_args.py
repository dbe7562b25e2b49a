"""What the argparse CLIs (`python -m label_image`, `python -m compat`) share: number flags
that say what was wanted, the classic label_image override flags, one-line errors, and an
entry point that ends with the right code on Ctrl-C and when the reader of the output left.
"""
import argparse
import math
import re
import sys
from typing import Callable, Optional, Sequence, Tuple

from retrain.common import interrupts
from retrain.common.errors import exit_as_the_reader_left
from retrain.common.logs import one_line


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, as retrain's are (argparse
    prints its whole usage block first); exit code 2. `--help` still shows the usage.

    A value such as `-1e9` or `-inf` after a flag is a number (argparse before Python 3.13 took
    only `-5` and `-0.5` for numbers, and `--unknown_threshold -1e9` for a missing value)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r'^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$|^-inf(inity)?$', re.IGNORECASE)

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {one_line(message)}\n')


def add_override_arguments(parser) -> None:
    """The classic label_image flags that override what is detected (never needed)."""
    parser.add_argument('--input_layer', help='entry tensor, e.g. input or Placeholder')
    parser.add_argument('--output_layer', help='output tensor, e.g. final_result')
    parser.add_argument('--input_mean', type=_finite, help='pixel value mapped to 0')
    parser.add_argument('--input_std', type=_nonzero, help='pixel range mapped to 1')
    parser.add_argument('--input_height', type=positive, help='only for models of any size')
    parser.add_argument('--input_width', type=positive, help='only for models of any size')


def override_size(parser: argparse.ArgumentParser,
                  args: argparse.Namespace) -> Optional[Tuple[int, int]]:
    """(--input_height, --input_width), None without them; one of the two alone is a usage
    error (a model of any size needs both)."""
    if (args.input_height is None) != (args.input_width is None):
        parser.error('give both --input_height and --input_width, or neither')
    return (args.input_height, args.input_width) if args.input_height else None


def number(text: str, kind: type = float):
    """`text` as a number of `kind`; argparse's message says what was wanted (by default it
    names this function)."""
    try:
        return kind(text)
    except ValueError:
        wanted = 'a whole number' if kind is int else 'a number'
        raise argparse.ArgumentTypeError(f'must be {wanted}, not {text!r}') from None


def positive(text: str) -> int:
    value = number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, not {value}')
    return value


def not_nan(text: str) -> float:
    """A number, infinities included (a threshold nothing or everything passes), but not NaN,
    which every comparison fails silently."""
    value = number(text)
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f'must be a number, not {text}')
    return value


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


def error(program: str, message: object) -> int:
    """Says what went wrong in one line on stderr; returns the exit code of runtime errors.

    After Ctrl-C, the tool ends as interrupted instead (its line, exit code 130): what failed then
    is the interrupt's doing (TensorFlow turns a KeyboardInterrupt raised inside a call it makes
    back into Python into an error of its own)."""
    if interrupts.requested():
        interrupts.end_interrupted()
    print(f'{program}: error: {one_line(str(message))}', file=sys.stderr)
    return 1


def run_main(program: str, main: Callable[[Sequence[str]], int]) -> None:
    """Console-script entry point: UTF-8 output (labels and paths), even when redirected; exit
    with main's code, 130 on Ctrl-C (within a second or two, even inside a TensorFlow call that
    never returns: interrupts' watchdog), 1 when the reader of the output went away (`| head`).

    A file name that is not valid UTF-8 is printed as its own bytes (as ls does), and escaped
    in messages."""
    for stream, errors in ((sys.stdout, 'surrogateescape'), (sys.stderr, 'backslashreplace')):
        if hasattr(stream, 'reconfigure'):
            stream.reconfigure(encoding='utf-8', errors=errors)
    interrupts.install(f'{program}: interrupted')  # One line, as retrain.
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        interrupts.end_interrupted()
    except BrokenPipeError:  # The reader has seen enough.
        exit_as_the_reader_left()
