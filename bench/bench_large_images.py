"""Large images: caching speed of phone photos, and peak memory beside a huge PNG.

    python -m bench.bench_large_images [--image_dir DIR] [--tfhub_module DIR] [--per_class 6]

Defaults use ../shared (flower_photos_small and the real MobileNet V2 module). From `per_class`
photos of each class it makes four sets: the photos as they are, the same photos upscaled to
12 megapixels (bench.large_images), the photos with a 16000x16000 PNG among them, and with a GIF
of 150 frames of 1500x1500 (1 GB decoded, 0.5 MB on disk); the 12 MP
set is measured again with --nofast_jpeg_decoding (`phone_12mp classic`: decoded at full
scale). Prints a table: caching images/s of each set (the cache's own pipeline and model, timed
after a warm-up pass, median of --repeats rounds), and the wall time, peak RSS and outcome of a
whole `python -m retrain` on it (/usr/bin/time -v).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from bench.large_images import write_animation, write_blank_png, write_upscaled
from bench.shared_inputs import add_input_flags
from retrain.cache import bottleneck_files
from retrain.config import RetrainConfig
from retrain.features.extractors import FeatureExtractor
from retrain.features.loading import load_extractor

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE_PNG_SIDE = 16000
GIF_FRAMES = (150, 1500)  # Frames, side.


def make_sets(image_dir: str, work: str, per_class: int) -> Dict[str, str]:
    """The three image folders below `work`, by name."""
    sets = {name: os.path.join(work, name)
            for name in ('photos', 'phone_12mp', 'photos+huge_png', 'photos+gif')}
    for name in sorted(os.listdir(image_dir)):
        folder = os.path.join(image_dir, name)
        if not os.path.isdir(folder):
            continue
        photos = sorted(n for n in os.listdir(folder) if n.lower().endswith('.jpg'))[:per_class]
        for photo in photos:
            for kind in ('photos', 'photos+huge_png', 'photos+gif'):
                os.makedirs(os.path.join(sets[kind], name), exist_ok=True)
                shutil.copyfile(os.path.join(folder, photo), os.path.join(sets[kind], name, photo))
            write_upscaled(os.path.join(folder, photo),
                           os.path.join(sets['phone_12mp'], name, photo))
    first_class = sorted(os.listdir(sets['photos+huge_png']))[0]
    write_blank_png(os.path.join(sets['photos+huge_png'], first_class, 'huge.png'),
                    HUGE_PNG_SIDE, HUGE_PNG_SIDE)
    write_animation(os.path.join(sets['photos+gif'], first_class, 'frames.gif'), *GIF_FRAMES)
    return sets


def _paths(folder: str) -> List[str]:
    return [os.path.join(folder, name, image) for name in sorted(os.listdir(folder))
            for image in sorted(os.listdir(os.path.join(folder, name)))]


def caching_rate(paths: Sequence[str], extractor: FeatureExtractor) -> float:
    """Images/s of compute_bottlenecks (decode, resize, model) over `paths`."""
    started, count = time.perf_counter(), 0
    for indices, _, _ in bottleneck_files.compute_bottlenecks(extractor, paths):
        count += len(indices)
    return count / (time.perf_counter() - started)


def retrain_run(image_dir: str, module: str, out: str, *extra: str) -> Dict[str, object]:
    """A whole `python -m retrain` in a fresh folder: wall time, peak RSS, exit status, skips.

    Peak RSS as /usr/bin/time -v reports it: the rusage of a child forked from this process
    would count this process's memory too."""
    command = ['/usr/bin/time', '-v', sys.executable, '-m', 'retrain', '--image_dir', image_dir,
               '--tfhub_module', module, '--bottleneck_dir', os.path.join(out, 'bn'),
               '--how_many_training_steps', '20', '--output_graph', os.path.join(out, 'graph.pb'),
               '--output_labels', os.path.join(out, 'labels.txt'),
               '--summaries_dir', os.path.join(out, 'sum'), *extra]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    started = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            encoding='utf-8', env=env, cwd=REPO_ROOT, check=False)
    lines = result.stderr.splitlines()
    peak_kb = next(int(line.split(':')[1]) for line in lines
                   if 'Maximum resident set size' in line)
    return {'run_s': time.perf_counter() - started, 'peak_rss_mb': peak_kb / 1024,
            'exit': result.returncode,
            'skipped': [line.split('Skipping ', 1)[1] for line in lines if 'Skipping ' in line]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_flags(parser)
    parser.add_argument('--per_class', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    extractors = {flag: load_extractor(RetrainConfig(tfhub_module=args.tfhub_module,
                                                     fast_jpeg_decoding=not flag))
                  for flag in ('', '--nofast_jpeg_decoding')}
    with tempfile.TemporaryDirectory() as work:
        sets = make_sets(args.image_dir, work, args.per_class)
        rows = [(name, folder, '') for name, folder in sets.items()]
        rows.insert(2, ('phone_12mp classic', sets['phone_12mp'], '--nofast_jpeg_decoding'))
        for _, folder, flag in rows:  # Warm-up: tracing, the page cache.
            caching_rate(_paths(folder), extractors[flag])
        rates: Dict[str, List[float]] = {name: [] for name, _, _ in rows}
        for _ in range(args.repeats):  # Round robin: other processes come and go.
            for name, folder, flag in rows:
                rates[name].append(caching_rate(_paths(folder), extractors[flag]))
        print(f'{"set":18} {"images":>6} {"MB":>7} {"cache img/s":>11} {"run s":>6} '
              f'{"peak RSS MB":>11} {"exit":>4}  skipped')
        for index, (name, folder, flag) in enumerate(rows):
            run = retrain_run(folder, args.tfhub_module, os.path.join(work, f'out{index}'),
                              *([flag] if flag else []))
            megabytes = sum(os.path.getsize(p) for p in _paths(folder)) / 2**20
            print(f'{name:18} {len(_paths(folder)):6d} {megabytes:7.1f} '
                  f'{statistics.median(rates[name]):11.1f} {run["run_s"]:6.1f} '
                  f'{run["peak_rss_mb"]:11.0f} {run["exit"]:4d}  {"; ".join(run["skipped"])}')
    print(f'({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
