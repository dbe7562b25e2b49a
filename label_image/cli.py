"""`python -m label_image IMAGE_OR_DIR...` / `label_image`: the classic classifier command.

No preprocessing flags are needed: the model says what it expects (compat.signature). The
classic flags (`--image --graph --labels --input_layer --output_layer --input_height
--input_width --input_mean --input_std`) are still accepted, as overrides. Per image it prints the
path and then `label (score = 0.97501)` lines, highest first (or JSON with `--json`). A bad image
gets one line on stderr and the others are still classified; the exit code is 1 if any failed.
"""
import argparse
import json
import os
import sys
from typing import List, Optional, Sequence

from retrain.common.cli_args import (
    OneLineParser,
    add_override_arguments,
    error,
    not_nan,
    number,
    override_size,
    positive,
    run_main,
)
from retrain.common.logs import as_logged, one_line
from retrain.common.quiet_tensorflow import import_tensorflow

_PROGRAM = 'label_image'
_DEFAULT_LABELS = '/tmp/output_labels.txt'  # retrain's --output_labels default.


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=_PROGRAM, description='Classify images with a retrained graph of any generation, '
        'a SavedModel, a .tflite or an .onnx file. Preprocessing is detected from the model.')
    parser.add_argument('images', nargs='*', metavar='IMAGE_OR_DIR',
                        help='image files, or folders to search for images')
    parser.add_argument('--image', action='append', default=[],
                        help='an image to classify (classic form; may be repeated)')
    parser.add_argument('--graph', default='/tmp/output_graph.pb',
                        help='frozen graph (.pb), SavedModel folder, .tflite or .onnx file')
    parser.add_argument('--labels', help='labels file, one label per line (UTF-8); default: '
                        'the labels an .onnx or .tflite file carries, assets/labels.txt of a '
                        f'SavedModel from compat convert, else {_DEFAULT_LABELS}')
    parser.add_argument('--top_k', '--num_top_predictions', type=positive, default=5,
                        dest='top_k', help='how many labels to print per image')
    parser.add_argument('--threshold', type=_unit_interval, default=0.5,
                        help='multi-label models: print the labels scoring at least this')
    parser.add_argument('--unknown_threshold', type=not_nan, default=0.0,
                        help='models that judge whether an image is unlike their training images '
                        '(retrain since this version, single-label): call it unknown when its '
                        'unknown score is above this; 0 is the operating point chosen in '
                        'training (about 10%% of images like the training ones), higher calls '
                        'fewer images unknown')
    parser.add_argument('--batch_size', type=positive, default=32,
                        help='how many images to run through the model at once')
    parser.add_argument('--json', action='store_true', help='print the results as JSON')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='say which entry point and preprocessing were detected')
    parser.add_argument('--allow_unsafe_ops', action='store_true',
                        help='run graphs with ops that can touch files, the network or the host')
    overrides = parser.add_argument_group('classic overrides (never needed)')
    add_override_arguments(overrides)
    return parser


def _unit_interval(text: str) -> float:
    value = number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'must be between 0 and 1, not {value}')
    return value


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    arguments = args.image + args.images
    if not arguments:
        parser.error('no images given: name image files or folders')
    size = override_size(parser, args)
    # TensorFlow is imported only now, so that --help and usage errors are instant.
    import_tensorflow()  # Quietly: without its start-up chatter on stderr.
    from compat import classifier as models
    from compat.labels import check_count, read_labels
    from label_image import images
    from retrain.common.errors import ToolError, error_summary
    try:
        model = models.load(args.graph, models.Overrides.from_args(args, size),
                            args.allow_unsafe_ops)
        if args.labels or not model.labels:
            labels_path = args.labels or _default_labels(args.graph)
            labels = read_labels(labels_path)
            check_count(labels, labels_path, model.num_classes, args.graph)
        else:
            labels = model.labels
            check_count(labels, f'the metadata of {args.graph}', model.num_classes, args.graph)
    except ToolError as e:
        return error(_PROGRAM, e)
    _explain(model, size, args.verbose)
    import tensorflow as tf
    try:
        results = images.classify_all(model, list(images.find_images(arguments)),
                                      args.batch_size)
        threshold = args.threshold if model.multi_label else None
        return _report(results, labels, args.top_k, args.json, threshold,
                       models.not_probabilities(model.output_op), args.unknown_threshold)
    except tf.errors.OpError as e:
        return error(_PROGRAM, f'running {args.graph} failed: {error_summary(e)}')


def _report(results, labels: List[str], top_k: int, as_json: bool,
            threshold: Optional[float] = None, note: str = '',
            unknown_threshold: float = 0.0) -> int:
    """Prints each result as it comes (JSON: all at the end); 1 if any image failed, else 0.

    A multi-label model (threshold given) prints only the labels scoring at least `threshold`;
    its JSON has every label's score. A `note` on the scores (not probabilities) is a field of
    each JSON result; in text it is said once, by _explain. Where the model judges whether an
    image is unlike its training images, one scoring above `unknown_threshold` gets an `unknown`
    line first (with the best guess and that score); its JSON has `unknown` and `unknown_score`.
    """
    failed = 0
    collected = []
    for result in results:
        if result.error:
            failed += 1
            error(_PROGRAM, f'cannot classify {result.path}: {result.error}')
        if as_json:
            found = _as_json(result, labels, len(labels) if threshold else top_k, note)
            if result.unknown_score is not None:
                found.update(unknown=result.unknown_score > unknown_threshold,
                             unknown_score=result.unknown_score)
            collected.append(found)
        elif not result.error:  # Names it did not choose, each on one line (logs.one_line).
            print(one_line(result.path))
            if result.unknown_score is not None and result.unknown_score > unknown_threshold:
                best = _top(result.scores, 1)[0]
                print(f'unknown (best guess = {one_line(labels[best])}, '
                      f'unknown score = {result.unknown_score:.5f} > {unknown_threshold:g})')
            for index in _top(result.scores, top_k, threshold):
                print(f'{one_line(labels[index])} (score = {result.scores[index]:.5f})')
            print(flush=True)
    if as_json:
        # Undecodable bytes of a name as `\xff`, as the log and report.json show them.
        print(json.dumps(as_logged(collected), ensure_ascii=False, indent=2))
    return 1 if failed else 0


def _default_labels(graph: str) -> str:
    bundled = os.path.join(graph, 'assets', 'labels.txt')
    return bundled if os.path.isfile(bundled) else _DEFAULT_LABELS


def _explain(model, size: Optional[tuple], verbose: bool) -> None:
    """-v: what was detected; always: overrides that contradict the model, and scores that are
    not probabilities (raw logits read as confidences mislead; -v's description says it too)."""
    from compat import classifier, signature
    spec = model.spec
    note = classifier.not_probabilities(model.output_op)
    if note and not verbose:
        print(f'{_PROGRAM}: note: {model.output} of {model.path}: {note}', file=sys.stderr)
    if verbose:
        print(model.describe(), file=sys.stderr)
        if model.format in (classifier.TFLITE, classifier.ONNX):
            from compat import inspection
            print(inspection.metadata_report(model), file=sys.stderr)
    if spec.expected:
        print(f'{_PROGRAM}: warning: --input_mean/--input_std give '
              f'{signature.formula(spec.mean, spec.std)}, but {spec.tensor} expects '
              f'{signature.formula(*spec.expected)}: scores may be nonsense', file=sys.stderr)
    if signature.size_conflict(spec, size):
        print(f'{_PROGRAM}: warning: ignoring --input_height/--input_width {size[0]}x{size[1]}: '
              f'{spec.tensor} takes {spec.size[0]}x{spec.size[1]}', file=sys.stderr)


def _top(scores, k: int, threshold: Optional[float] = None) -> List[int]:
    """The k highest scores' indices, highest first; only those at least `threshold`, if given."""
    ranked = sorted(range(len(scores)), key=lambda i: -float(scores[i]))[:k]
    return [i for i in ranked if threshold is None or scores[i] >= threshold]


def _as_json(result, labels: List[str], k: int, note: str = '') -> dict:
    if result.error:
        return {'image': result.path, 'error': result.error}
    found = {'image': result.path, 'predictions': [
        {'label': labels[i], 'score': float(result.scores[i])} for i in _top(result.scores, k)]}
    return {**found, 'note': note} if note else found


def run() -> None:
    """Console-script entry point."""
    run_main(_PROGRAM, main)
