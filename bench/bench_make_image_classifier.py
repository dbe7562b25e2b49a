"""make_image_classifier here against the original, run from its source with tf_keras:
`python -m bench.bench_make_image_classifier`.

    python -m bench.bench_make_image_classifier --image_dir DIR --tfhub_module MODULE \
        [--peer_python /work/peer-venv/bin/python] [--folds 1] [--repeats 1] [--json PATH]

Holds out every fifth photo of each class (sorted names) as unseen test photos, runs both tools
with the same command line on the rest (ours cold: an empty bottleneck cache, then warm with
other hyperparameters), and scores each SavedModel's serving_default on the test photos, fed the
same pixels (TensorFlow's bilinear resize, scaled to [0, 1]). Prints the wall times and the
accuracies; without the peer (see bench/README_make_image_classifier.md) its row says why.
With --folds K (up to 5), fold k holds out the photos at k, k + 5, ... instead, so every photo
is a test photo once over 5 folds; it then also prints each run's accuracy over all the folds'
test photos and the paired difference of the cold run against the original, with its standard
error (each photo's right-or-wrong, ours minus theirs). With --repeats R every fold runs R
times: neither tool is seeded, so the runs differ as two runs of one tool do; each photo's
difference is averaged over its R runs before the standard error is taken over the photos.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_MODULE = 'tensorflow_hub.tools.make_image_classifier.make_image_classifier'
DEFAULT_PEER = os.environ.get('MAKE_IMAGE_CLASSIFIER_PEER_PYTHON',
                              os.path.join(os.sep, 'work', 'peer-venv', 'bin', 'python'))


def _split(image_dir: str, train_dir: str, fold: int) -> List[Tuple[str, str]]:
    """Links the training photos into `train_dir`; returns the test photos (path, class): every
    fifth of each class, from the `fold`th on."""
    test = []
    for name in sorted(os.listdir(image_dir)):
        folder = os.path.join(image_dir, name)
        if not os.path.isdir(folder):
            continue
        os.makedirs(os.path.join(train_dir, name))
        for i, file in enumerate(sorted(os.listdir(folder))):
            if i % 5 == fold:
                test.append((os.path.join(folder, file), name))
            else:
                os.link(os.path.join(folder, file), os.path.join(train_dir, name, file))
    return test


def _timed(command: List[str], env: Dict[str, str]) -> Tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    return time.monotonic() - started, done


def _right(saved_model: str, labels_file: str, test: List[Tuple[str, str]]) -> List[bool]:
    """Whether serving_default's top class is right, photo by photo, read as a client of the
    original reads it."""
    serve = tf.saved_model.load(saved_model).signatures['serving_default']
    (key, spec), = serve.structured_input_signature[1].items()
    size = spec.shape[1:3]
    with open(labels_file, encoding='utf-8') as f:
        labels = f.read().splitlines()
    right = []
    for start in range(0, len(test), 32):
        batch = test[start:start + 32]
        images = tf.stack([tf.image.resize(tf.cast(tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False), tf.float32),
            size) / 255.0 for path, _ in batch])
        (scores,) = serve(**{key: images}).values()
        right += [labels[i] == name for i, (_, name) in zip(scores.numpy().argmax(axis=1), batch)]
    return right


def _peer_missing(peer_python: str) -> Optional[str]:
    if not os.path.exists(peer_python):
        return f'no peer interpreter at {peer_python}'
    found = subprocess.run([peer_python, '-c', f'import importlib.util as u; '
                            f'print(u.find_spec("{PEER_MODULE}") is not None)'],
                           capture_output=True, text=True)
    if found.stdout.strip() != 'True':
        return f'{peer_python} cannot import {PEER_MODULE}'
    return None


def _runs(work: str, peer_python: str) -> Tuple[List[tuple], Optional[str]]:
    """(name, command, extra flags, environment) of each run; why the peer is missing, if it is."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    cache = f'--bottleneck_dir={os.path.join(work, "cache")}'
    runs = [('ours, cold', [sys.executable, '-m', 'make_image_classifier'], [cache], env),
            ('ours, warm, --learning_rate=0.01', [sys.executable, '-m', 'make_image_classifier'],
             [cache, '--learning_rate=0.01'], env)]
    missing = _peer_missing(peer_python)
    if not missing:
        runs.append(('original (tf_keras)', [peer_python, '-m', PEER_MODULE], [],
                     dict(os.environ, TF_USE_LEGACY_KERAS='1')))
    return runs, missing


def _fold(image_dir: str, module: str, peer_python: str, fold: int, repeat: int) -> List[Dict]:
    """Every run on one fold: a row each, with its photos' right-or-wrong."""
    work = tempfile.mkdtemp(prefix='bench_mic_')
    rows = []
    try:
        train_dir = os.path.join(work, 'train')
        test = _split(image_dir, train_dir, (4 + fold) % 5)  # Fold 0: the earlier split.
        common = [f'--image_dir={train_dir}', f'--tfhub_module={module}']
        runs, missing = _runs(work, peer_python)
        if missing:
            rows.append({'run': 'original (tf_keras)', 'skipped': missing})
        for index, (name, command, extra, run_env) in enumerate(runs):
            out = os.path.join(work, f'out{index}')
            os.makedirs(out)  # The original fails when the labels file's folder is missing.
            outputs = [f'--saved_model_dir={os.path.join(out, "saved_model")}',
                       f'--labels_output_file={os.path.join(out, "labels.txt")}']
            seconds, done = _timed([*command, *common, *outputs, *extra], run_env)
            if done.returncode:
                rows.append({'run': name, 'failed': done.stderr[-1500:]})
                continue
            right = _right(os.path.join(out, 'saved_model'), os.path.join(out, 'labels.txt'),
                           test)
            rows.append({'run': name, 'fold': fold, 'repeat': repeat, 'seconds': round(seconds, 1),
                         'test_accuracy': sum(right) / len(right), 'right': right})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _print_pooled(rows: List[Dict]) -> None:
    """Each run's accuracy over every fold's photos; ours cold minus the original, paired by
    photo (fold and position) and averaged over the repeats."""
    right: Dict[str, Dict[Tuple[int, int], List[bool]]] = {}
    for row in rows:
        for position, value in enumerate(row.get('right', [])):
            right.setdefault(row['run'], {}).setdefault((row['fold'], position), []).append(value)
    print(f'\nall folds: {"run":36} {"test accuracy":>14}')
    for name, photos in right.items():
        values = [value for runs in photos.values() for value in runs]
        print(f'           {name:36} {sum(values) / len(values):13.1%} '
              f'(N={len(photos)} photos, {len(values)} answers)')
    ours, theirs = right.get('ours, cold', {}), right.get('original (tf_keras)', {})
    if ours and ours.keys() == theirs.keys():
        differences = [sum(ours[photo]) / len(ours[photo]) - sum(theirs[photo]) / len(theirs[photo])
                       for photo in ours]
        mean = sum(differences) / len(differences)
        spread = (sum((d - mean) ** 2 for d in differences) / (len(differences) - 1)) ** 0.5
        error = spread / len(differences) ** 0.5
        print(f'ours cold minus the original: {mean * 100:+.1f} points (standard error '
              f'{error * 100:.1f}, 95% interval {(mean - 1.96 * error) * 100:+.1f} to '
              f'{(mean + 1.96 * error) * 100:+.1f}; ours right more often on '
              f'{sum(d > 0 for d in differences)} photos, the original on '
              f'{sum(d < 0 for d in differences)})')


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.bench_make_image_classifier',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--image_dir', required=True, help='class folders of photos')
    parser.add_argument('--tfhub_module', required=True, help='a local TF2 feature-vector module')
    parser.add_argument('--peer_python', default=DEFAULT_PEER,
                        help='python of the venv with tensorflow, tf_keras and the tool')
    parser.add_argument('--folds', type=int, default=1, choices=range(1, 6),
                        help='how many of the 5 held-out fifths to test on, one after another')
    parser.add_argument('--repeats', type=int, default=1,
                        help='how many times to run each tool on each fold')
    parser.add_argument('--json', default='', help='also write the results here')
    args = parser.parse_args()
    rows = [row for repeat in range(args.repeats) for fold in range(args.folds)
            for row in _fold(args.image_dir, args.tfhub_module, args.peer_python, fold, repeat)]
    print(f'{"run":36} {"fold":>4} {"repeat":>6} {"wall s":>8} {"test accuracy":>14}')
    for row in rows:
        if 'seconds' in row:
            print(f'{row["run"]:36} {row["fold"]:>4} {row["repeat"]:>6} {row["seconds"]:8.1f} '
                  f'{row["test_accuracy"]:13.1%} (N={len(row["right"])})')
        else:
            print(f'{row["run"]:36} {row.get("skipped") or "failed: " + row["failed"]}')
    if args.folds > 1 or args.repeats > 1:
        _print_pooled(rows)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'results': rows, 'load_average': os.getloadavg()}, f, indent=1)


if __name__ == '__main__':
    main()
