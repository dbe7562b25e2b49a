"""Warm starts at scale: `python -m bench.bench_warm_scale [--images 100000] [--dim 1001]`.

Builds a synthetic job in a scratch folder: N placeholder image files in 10 class folders, a full
classic text cache for them (one `photo.jpg_<module>.txt` per image, D values each) and a tiny
module whose bottleneck size is D. Then runs `python -m retrain` on it twice:
  cold: only the text files exist (a classic cache), so all N are parsed and the binary index
        is built beside them;
  warm: the index is current, so the text files are only stat'ed.
and reports the wall time of each, when each logged `Step 0` (training started), and the peak RSS
of each process, next to the size of the bottleneck array itself. The runs skip the run report
(`--noreport`): every placeholder image is the same empty file and the rows repeat 1000 vectors,
so all of them are duplicates, which is no report's real workload (bench_report measures that).

D defaults to 1001, the bottleneck size of the issue's job (the legacy MobileNet v1 0.25 graph is
cut at its 1001 logits): at 100,000 images that is a 382 MiB float32 array and about 1 GB of text
files. The placeholder images are empty files: with a full cache they are never decoded.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import tensorflow as tf

from retrain.cache import bottleneck_files
from retrain.common import fileio
from retrain.features.hub_module import hub_cache_suffix

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(REPO_ROOT, 'bench', 'results', 'warm_scale.json')
CLASSES = 10
IMAGE_SIZE = 32
DISTINCT_ROWS = 1000  # Formatting floats is slow; files repeat these many distinct vectors.


class _WideModule(tf.Module):
    """A feature-vector module with a D-wide output, as cheap as a model can be."""

    def __init__(self, dim: int):
        super().__init__()
        self.projection = tf.Variable(
            np.random.default_rng(0).normal(size=(3, dim)).astype(np.float32))
        self.__call__ = tf.function(
            lambda images: tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.projection),
            input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32)])


def make_job(root: str, images: int, dim: int) -> Dict[str, str]:
    """The image folder, the full text cache and the module of the synthetic job."""
    module = os.path.join(root, 'module')
    tf.saved_model.save(_WideModule(dim), module)
    image_dir, bottleneck_dir = os.path.join(root, 'images'), os.path.join(root, 'bottlenecks')
    suffix = hub_cache_suffix(module)
    rng = np.random.default_rng(0)
    texts = [bottleneck_files.format_values(rng.normal(size=dim).astype(np.float32))
             for _ in range(DISTINCT_ROWS)]
    for c in range(CLASSES):
        for folder in (image_dir, bottleneck_dir):
            os.makedirs(os.path.join(folder, f'class_{c}'), exist_ok=True)
    for i in range(images):
        name = os.path.join(f'class_{i % CLASSES}', f'photo_{i:07d}.jpg')
        open(os.path.join(image_dir, name), 'wb').close()
        with open(os.path.join(bottleneck_dir, name + suffix + '.txt'), 'w',
                  encoding='utf-8') as f:
            f.write(texts[i % DISTINCT_ROWS])
    return {'module': module, 'image_dir': image_dir, 'bottleneck_dir': bottleneck_dir}


def _du_mb(folder: str, suffix: str) -> float:
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(folder)
                for n in names if n.endswith(suffix))
    return round(total / 2 ** 20, 1)


def run_retrain(job: Dict[str, str], out: str, steps: int) -> Dict[str, float]:
    """One `python -m retrain`: wall time, time to `Step 0`, peak RSS (this child alone)."""
    command = [sys.executable, '-m', 'retrain', '--image_dir', job['image_dir'],
               '--tfhub_module', job['module'], '--bottleneck_dir', job['bottleneck_dir'],
               '--how_many_training_steps', str(steps), '--output_graph',
               os.path.join(out, 'graph.pb'), '--output_labels', os.path.join(out, 'labels.txt'),
               '--summaries_dir', os.path.join(out, 'summaries'), '--random_seed', '0',
               '--noreport']  # Its images and rows are copies of a few: bench_report's job.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONIOENCODING='utf-8',
               PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    started = time.perf_counter()
    first_step, lines = None, []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, encoding='utf-8', env=env, cwd=REPO_ROOT)
    for line in process.stdout:
        lines.append(line)
        if first_step is None and 'Step 0:' in line:
            first_step = time.perf_counter() - started
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError('retrain failed:\n' + ''.join(lines[-20:]))
    cached = next((line.strip() for line in lines if 'bottlenecks cached in' in line), '')
    return {'wall_s': round(wall, 2), 'training_starts_s': round(first_step, 2),
            'peak_rss_mb': round(usage.ru_maxrss / 2 ** 10, 1), 'cache_log': cached[-120:]}


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m bench.bench_warm_scale',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=100_000)
    parser.add_argument('--dim', type=int, default=1001, help='bottleneck size')
    parser.add_argument('--steps', type=int, default=100, help='training steps of each run')
    parser.add_argument('--work_dir', default='', help='scratch folder (default: a temp dir)')
    parser.add_argument('--json', default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix='warm_scale_', dir=args.work_dir or None)
    try:
        started = time.perf_counter()
        job = make_job(root, args.images, args.dim)
        results: Dict[str, object] = {
            'images': args.images, 'dim': args.dim, 'steps': args.steps,
            'generate_s': round(time.perf_counter() - started, 1),
            'array_mb': round(args.images * args.dim * 4 / 2 ** 20, 1),
            'text_cache_mb': _du_mb(job['bottleneck_dir'], '.txt'),
            'load_before': round(os.getloadavg()[0], 2)}
        results['cold'] = run_retrain(job, os.path.join(root, 'out'), args.steps)
        results['index_mb'] = _du_mb(job['bottleneck_dir'], '.npy')
        results['warm'] = run_retrain(job, os.path.join(root, 'out'), args.steps)
        results['load_after'] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f'{args.images} cached images, bottleneck size {args.dim} '
          f'(array {results["array_mb"]} MiB, text files {results["text_cache_mb"]} MiB, '
          f'index {results["index_mb"]} MiB; generated in {results["generate_s"]} s)')
    print(f'  {"run":<6} {"Step 0 after":>13} {"wall":>9} {"peak RSS":>11}')
    for run in ('cold', 'warm'):
        r = results[run]
        print(f'  {run:<6} {r["training_starts_s"]:>11} s {r["wall_s"]:>7} s '
              f'{r["peak_rss_mb"]:>7} MiB')
    print(f'  load average before/after: {results["load_before"]} / {results["load_after"]}')
    fileio.atomic_write(args.json, json.dumps(results, indent=2))
    print(f'Wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
