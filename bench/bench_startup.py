"""What every command pays before its work (`python -m bench.bench_startup`).

    python -m bench.bench_startup [--runs 7] [--first_on_path DIR ...]

Each figure is the median over `runs` fresh processes, as each command starts once: importing
ml_dtypes (TensorFlow imports it first), then TensorFlow as the CLIs import it
(retrain.common.quiet_tensorflow), then building the decoding pipeline that caching and
label_image run (retrain.data.image_io: its traced function), and the whole process. One row as
installed, then one for each DIR put first on the path: another ml_dtypes (made with
`pip install --no-deps --target DIR ml_dtypes==0.7.0`), or another checkout of this repository.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHILD = '''
import json, os, sys, time
started = time.perf_counter()
import ml_dtypes
imported_ml_dtypes = time.perf_counter()
from retrain.common.quiet_tensorflow import import_tensorflow
import_tensorflow()
imported_tensorflow = time.perf_counter()
import tensorflow as tf
from retrain.data import image_io
image = os.path.join(sys.argv[1], 'image.png')
tf.io.write_file(image, tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)))
built = time.perf_counter()
image_io.image_batches([image], (224, 224), 8)
done = time.perf_counter()
print(json.dumps({'version': ml_dtypes.__version__,
                  'ml_dtypes': imported_ml_dtypes - started,
                  'tensorflow': imported_tensorflow - imported_ml_dtypes,
                  'pipeline': done - built}))
'''
_COLUMNS = ('ml_dtypes', 'tensorflow', 'pipeline', 'process')


def _run_once(first_on_path: Optional[str]) -> Dict:
    path = [p for p in (first_on_path, REPO_ROOT, os.environ.get('PYTHONPATH')) if p]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        result = subprocess.run(  # Not run in the checkout: `-c` puts the folder first.
            [sys.executable, '-c', _CHILD, scratch], capture_output=True, text=True, cwd=scratch,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(path)), check=False)
        elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f'the measuring process failed:\n{result.stderr[-2000:]}')
    return {**json.loads(result.stdout.strip().splitlines()[-1]), 'process': elapsed}


def _row(first_on_path: Optional[str], runs: int) -> List[str]:
    measured = [_run_once(first_on_path) for _ in range(runs)]
    return [measured[0]['version']] + [f'{statistics.median(m[c] for m in measured):.3f}'
                                       for c in _COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.bench_startup',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=7)
    parser.add_argument('--first_on_path', action='append', default=[],
                        help='a folder put first on the path: another ml_dtypes or checkout')
    args = parser.parse_args()
    header = ['ml_dtypes', 'import it (s)', 'import TensorFlow (s)', 'decoding pipeline (s)',
              'whole process (s)']
    print(f'median of {args.runs} processes each')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for first_on_path in [None, *args.first_on_path]:
        print('| ' + ' | '.join(_row(first_on_path, args.runs)) + ' |', flush=True)


if __name__ == '__main__':
    main()
