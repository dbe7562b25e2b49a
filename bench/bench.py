"""Where a retrain run spends its time, measured piece by piece: `python -m bench.bench`.

    python -m bench.bench --image_dir DIR --tfhub_module MODULE [--json PATH]
    python -m bench.bench --image_dir DIR --architecture mobilenet_0.25_224 --model_dir DIR

Measures, on this machine: the model alone on pre-decoded batches; reading+decoding+resizing
alone (the same tf.data pipeline the cache uses); the bound these two set together (on CPU both
share the cores, so 1 / (1/model + 1/decode); on a GPU the smaller of the two); end-to-end cache
filling into a fresh folder; training steps/s on the in-memory bottlenecks; the wall time of a
whole `python -m retrain` cold (empty cache) and then warm (full cache), when each starts
training, and the accuracy; label_image latency for one image and throughput on the folder; peak
RSS. Prints a table and writes the numbers as JSON.
Other processes on the machine skew every number: the first three are timed in rounds, round
robin, and their medians reported; the load average is recorded with them.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf
from absl import logging

from retrain.cache import bottleneck_files
from retrain.common import fileio
from retrain.config import RetrainConfig
from retrain.data import image_io, image_lists
from retrain.features.extractors import FeatureExtractor
from retrain.features.loading import load_extractor
from retrain.tasks.single_label import examples_of
from retrain.train import loop

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(REPO_ROOT, 'bench', 'results', 'bench.json')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m bench.bench',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--image_dir', required=True, help='class folders of images')
    parser.add_argument('--tfhub_module', default='', help='hub module (path, URL or .tar.gz)')
    parser.add_argument('--architecture', default='', help='legacy frozen-graph architecture')
    parser.add_argument('--model_dir', default='/tmp/imagenet', help='legacy: archive folder')
    parser.add_argument('--batch_size', type=int, default=RetrainConfig.cache_batch_size,
                        help='images per model call while caching (as --cache_batch_size)')
    parser.add_argument('--training_steps', type=int, default=4000)
    parser.add_argument('--seconds', type=float, default=5.0,
                        help='at least how long each timing of the model or decoding alone runs')
    parser.add_argument('--repeats', type=int, default=3,
                        help='rounds of decode/model/caching timings; the median of each counts')
    parser.add_argument('--skip', default='', help='comma-separated: runs,label_image')
    parser.add_argument('--json', default=DEFAULT_JSON, help='where to write the results')
    parser.add_argument('--work_dir', default='', help='scratch folder (default: a temp dir)')
    return parser


def _load_average() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _peak_rss_mb(who: int) -> float:
    """Peak resident memory in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(who).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == 'darwin' else 2 ** 10), 1)


def _all_paths(classes: Sequence[image_lists.ImageClass], image_dir: str) -> List[str]:
    return [image_lists.image_path(image_dir, c, rel) for c in classes
            for category in image_lists.CATEGORIES for rel in c.images(category)]


def decoded_sample(paths: Sequence[str], extractor: FeatureExtractor,
                   batch_size: int) -> List[tf.Tensor]:
    """A few decoded batches for the model alone, after one untimed pass over all the files.

    That pass builds the pipeline and brings the files into the page cache, as they are for every
    timed measurement that follows.
    """
    for _ in image_io.image_batches(paths, extractor.image_size, batch_size):
        pass
    return [images for _, images, _ in image_io.image_batches(
        paths, extractor.image_size, batch_size).take(4)]


def measure_decode(paths: Sequence[str], extractor: FeatureExtractor, batch_size: int,
                   seconds: float) -> float:
    """Images/s of the cache's read+decode+resize pipeline alone, over whole passes."""
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < seconds or count == 0:
        for _, images, _ in image_io.image_batches(paths, extractor.image_size,
                                                   batch_size):
            count += int(images.shape[0])
    return count / (time.perf_counter() - started)


def measure_model(function: Callable[[tf.Tensor], tf.Tensor], batches: List[tf.Tensor],
                  seconds: float) -> float:
    """Images/s of the model alone (as caching runs it), cycling over already decoded batches."""
    function(batches[0]).numpy()  # Traced and warmed up outside the clock.
    started, count, i = time.perf_counter(), 0, 0
    while time.perf_counter() - started < seconds or count == 0:
        batch = batches[i % len(batches)]
        function(batch).numpy()
        count += int(batch.shape[0])
        i += 1
    return count / (time.perf_counter() - started)


def measure_caching(image_dir: str, bottleneck_dir: str, extractor: FeatureExtractor,
                    batch_size: int):
    """Fills a fresh cache the way retrain does; returns (images/s, bottlenecks, class count)."""
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    count = sum(c.count() for c in classes)
    started = time.perf_counter()
    data, _ = bottleneck_files.load_or_compute(image_dir, examples_of(classes), bottleneck_dir,
                                               extractor,
                                               batch_size)
    return count / (time.perf_counter() - started), data, len(classes)


def measure_training(data: bottleneck_files.Bottlenecks, num_classes: int, steps: int) -> float:
    config = RetrainConfig(how_many_training_steps=steps, random_seed=0, summaries_dir='')
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)  # 1,200 log lines would time the terminal.
    try:
        started = time.perf_counter()
        loop.train(data, num_classes, config)
        return steps / (time.perf_counter() - started)
    finally:
        logging.set_verbosity(verbosity)


def _model_args(args) -> List[str]:
    if args.architecture:
        return ['--architecture', args.architecture, '--model_dir', args.model_dir]
    return ['--tfhub_module', args.tfhub_module]


def _env() -> Dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONIOENCODING='utf-8',
                PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))


def measure_run(args, bottleneck_dir: str, out_dir: str, kind: str) -> Dict[str, object]:
    """A whole `python -m retrain` (`kind`: cold on an empty cache, warm on a full one): its wall
    time, when it logged Step 0 (training started) and its final test accuracy."""
    command = [sys.executable, '-m', 'retrain', '--image_dir', args.image_dir, *_model_args(args),
               '--bottleneck_dir', bottleneck_dir, '--how_many_training_steps',
               str(args.training_steps), '--output_graph', os.path.join(out_dir, 'graph.pb'),
               '--output_labels', os.path.join(out_dir, 'labels.txt'),
               '--summaries_dir', os.path.join(out_dir, 'summaries'), '--random_seed', '0']
    started = time.perf_counter()
    first_step = None
    lines = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          encoding='utf-8', env=_env(), cwd=REPO_ROOT) as process:
        for line in process.stdout:
            lines.append(line)
            if first_step is None and 'Step 0:' in line:
                first_step = time.perf_counter() - started
    wall = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f'{kind} run failed:\n' + ''.join(lines[-20:]))
    accuracy = next((line.split('Final test accuracy = ')[1].strip() for line in lines
                     if 'Final test accuracy = ' in line), '')
    return {f'{kind}_run_s': round(wall, 2),
            f'{kind}_run_training_starts_s': round(first_step or 0, 2),
            f'{kind}_run_test_accuracy': accuracy}


def _label_image(graph: str, labels: str, images: Sequence[str]) -> float:
    started = time.perf_counter()
    process = subprocess.run([sys.executable, '-m', 'label_image', '--graph', graph, '--labels',
                              labels, *images], capture_output=True, text=True, encoding='utf-8',
                             env=_env(), cwd=REPO_ROOT)
    if process.returncode:
        raise RuntimeError('label_image failed: ' + process.stderr.strip()[-500:])
    return time.perf_counter() - started


def measure_label_image(out_dir: str, image_dir: str, paths: Sequence[str]) -> Dict[str, object]:
    """One image (wall time of the command) and the folder (images/s beyond that start-up)."""
    graph, labels = os.path.join(out_dir, 'graph.pb'), os.path.join(out_dir, 'labels.txt')
    try:
        single = _label_image(graph, labels, paths[:1])
        folder = _label_image(graph, labels, [image_dir])
    except RuntimeError as e:
        return {'label_image_note': str(e)}
    results = {'label_image_one_image_s': round(single, 2),
               'label_image_folder_s': round(folder, 2)}
    if folder > single:  # Else start-up noise hides the work: too few images to say.
        results['label_image_folder_images_per_s'] = round(len(paths) / (folder - single), 1)
    return results


def _rows(results: Dict[str, object]) -> List[Tuple[str, str]]:
    def get(key, unit=''):
        value = results.get(key)
        return 'skipped' if value is None else f'{value}{unit}'
    return [
        ('model only (pre-decoded batches)', get('model_images_per_s', ' images/s')),
        ('read+decode+resize only', get('decode_images_per_s', ' images/s')),
        ('bound (CPU: 1/(1/model+1/decode))', get('bound_images_per_s', ' images/s')),
        ('end-to-end caching (fresh cache)', get('caching_images_per_s', ' images/s')),
        ('caching / bound', get('caching_fraction_of_bound')),
        ('model preparation (once per run, not in caching)', get('model_preparation_s', ' s')),
        (f'training ({results["training_steps"]} steps)', get('training_steps_per_s', ' steps/s')),
        ('cold python -m retrain (empty cache), wall', get('cold_run_s', ' s')),
        ('cold run: Step 0 logged after', get('cold_run_training_starts_s', ' s')),
        ('cold run: final test accuracy', get('cold_run_test_accuracy')),
        ('warm python -m retrain (full cache), wall', get('warm_run_s', ' s')),
        ('warm run: Step 0 logged after', get('warm_run_training_starts_s', ' s')),
        ('label_image, one image (process)', get('label_image_one_image_s', ' s')),
        ('label_image, folder', get('label_image_folder_images_per_s', ' images/s')),
        ('peak RSS, benchmark process', get('peak_rss_mb', ' MiB')),
        ('peak RSS, child processes', get('peak_rss_children_mb', ' MiB')),
        ('load average before/after', f'{results["load_before"]} / {results["load_after"]}'),
    ]


def run(args) -> Dict[str, object]:
    skip = set(filter(None, args.skip.split(',')))
    config = RetrainConfig(tfhub_module=args.tfhub_module, architecture=args.architecture,
                           model_dir=args.model_dir, use_legacy_model=bool(args.architecture))
    results: Dict[str, object] = {
        'image_dir': args.image_dir, 'model': args.architecture or args.tfhub_module,
        'batch_size': args.batch_size, 'training_steps': args.training_steps,
        'cpus': os.cpu_count(), 'gpus': len(tf.config.list_physical_devices('GPU')),
        'tensorflow': tf.__version__, 'load_before': _load_average()}
    extractor = load_extractor(config)
    classes = image_lists.create_image_lists(args.image_dir, 10, 10)
    paths = _all_paths(classes, args.image_dir)
    results['images'] = len(paths)
    batches = decoded_sample(paths, extractor, args.batch_size)
    started = time.perf_counter()
    function = bottleneck_files.inference_function(extractor)
    function(batches[0]).numpy()
    results['model_preparation_s'] = round(time.perf_counter() - started, 2)
    runs: Dict[str, List[float]] = {'decode': [], 'model': [], 'caching': []}
    with tempfile.TemporaryDirectory(dir=args.work_dir or None) as work:
        # Round robin, the median of each: other processes come and go while this runs.
        for repeat in range(args.repeats):
            runs['decode'].append(measure_decode(paths, extractor, args.batch_size,
                                                 args.seconds))
            runs['model'].append(measure_model(function, batches, args.seconds))
            bottleneck_dir = os.path.join(work, f'bottlenecks_{repeat}')
            caching, data, num_classes = measure_caching(args.image_dir, bottleneck_dir,
                                                         extractor, args.batch_size)
            runs['caching'].append(caching)
        del batches
        decode, model, caching = (statistics.median(runs[k])
                                  for k in ('decode', 'model', 'caching'))
        bound = min(model, decode) if results['gpus'] else 1 / (1 / model + 1 / decode)
        results.update(decode_images_per_s=round(decode, 1), model_images_per_s=round(model, 1),
                       bound_images_per_s=round(bound, 1), caching_images_per_s=round(caching, 1),
                       caching_fraction_of_bound=round(caching / bound, 3),
                       runs={k: [round(v, 1) for v in values] for k, values in runs.items()})
        results['training_steps_per_s'] = round(
            measure_training(data, num_classes, args.training_steps), 1)
        results['peak_rss_mb'] = _peak_rss_mb(resource.RUSAGE_SELF)
        if 'runs' not in skip:
            run_cache = os.path.join(work, 'bottlenecks_run')
            for kind in ('cold', 'warm'):
                results.update(measure_run(args, run_cache, work, kind))
            if 'label_image' not in skip:
                results.update(measure_label_image(work, args.image_dir, paths))
        results['peak_rss_children_mb'] = _peak_rss_mb(resource.RUSAGE_CHILDREN)
    results['load_after'] = _load_average()
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if bool(args.tfhub_module) == bool(args.architecture):
        print('bench: give exactly one of --tfhub_module and --architecture', file=sys.stderr)
        return 2
    logging.set_verbosity(logging.WARNING)
    results = run(args)
    rows = _rows(results)
    width = max(len(name) for name, _ in rows)
    print(f'{results["model"]} on {results["images"]} images of {results["image_dir"]}, '
          f'batch {results["batch_size"]}, {results["cpus"]} CPUs, {results["gpus"]} GPUs, '
          f'median of {args.repeats} rounds for the first four rows')
    for name, value in rows:
        print(f'  {name:<{width}}  {value}')
    if 'label_image_note' in results:
        print(f'  label_image was not measured: {results["label_image_note"]}')
    fileio.atomic_write(args.json, json.dumps(results, indent=2))
    print(f'Wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
