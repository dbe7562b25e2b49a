"""What --onnx_output_file costs and how faithful the file is: `python -m bench.bench_onnx`.

    python -m bench.bench_onnx --image_dir DIR --tfhub_module MODULE [--json PATH]

Runs `python -m retrain` once to fill a cache (writing the frozen graph, the SavedModel and the
ONNX file), then in rounds warm without and warm with --onnx_output_file, and reports the median
of each (the bar: the ONNX file must not double a run's time) and of the writer alone, in
process (graph, conversion, file; the frozen module is shared with the other outputs).
Then, on the held-out photos (the run's testing and validation split), feeds the same pixels
to the frozen graph (`Placeholder:0`), the SavedModel's serving_default, the ONNX file in ONNX
Runtime and in OpenVINO (CPU, f32 inference precision), and reports how often each picks the
frozen graph's top-1 class and how far the scores lie apart; and the top-1 agreement when the
pixels come from Pillow's resize, which smooths (why the README's client resizes as TensorFlow).
Needs the onnx extra, plus openvino and pillow.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
import tensorflow as tf

from retrain.config import RetrainConfig
from retrain.data import image_io, image_lists
from retrain.export import onnx as onnx_export
from retrain.export import tflite
from retrain.features.loading import load_extractor
from retrain.train.heads import Head

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_JSON = os.path.join(REPO_ROOT, 'bench', 'results', 'bench_onnx.json')


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m bench.bench_onnx',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--image_dir', required=True, help='class folders of images')
    parser.add_argument('--tfhub_module', required=True, help='hub module (path or URL)')
    parser.add_argument('--training_steps', type=int, default=300)
    parser.add_argument('--repeats', type=int, default=3,
                        help='rounds of warm runs and of the writer alone; medians count')
    parser.add_argument('--json', default=DEFAULT_JSON, help='where to write the results')
    parser.add_argument('--work_dir', default='', help='scratch folder (default: a temp dir)')
    return parser


def _retrain(args, work: str, *extra: str) -> float:
    """Seconds of one `python -m retrain` run writing below `work`."""
    command = [sys.executable, '-m', 'retrain', '--image_dir', args.image_dir,
               '--tfhub_module', args.tfhub_module, '--random_seed', '0', '--noreport',
               '--how_many_training_steps', str(args.training_steps),
               '--bottleneck_dir', os.path.join(work, 'bn'),
               '--output_graph', os.path.join(work, 'graph.pb'),
               '--output_labels', os.path.join(work, 'labels.txt'),
               '--summaries_dir', os.path.join(work, 'summaries'), *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)
    return time.perf_counter() - started


def time_writer(args, work: str) -> float:
    """Median seconds of the ONNX writer alone (graph, conversion, file) for this module."""
    extractor = load_extractor(RetrainConfig(tfhub_module=args.tfhub_module))
    extractor.freeze()  # Shared with the other outputs of a run: not the writer's cost.
    head = Head.initial(extractor.bottleneck_size, 5, np.random.default_rng(0))
    labels = [f'class {i}' for i in range(5)]
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        graph = tflite.classifier_graph(extractor, head)
        onnx_export.write_onnx(os.path.join(work, 'alone.onnx'), onnx_export.convert(
            graph, extractor.image_size, labels))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def held_out(image_dir: str) -> List[str]:
    classes = image_lists.create_image_lists(image_dir, 10, 10)
    return [image_lists.image_path(image_dir, c, rel) for c in classes
            for category in ('testing', 'validation') for rel in c.images(category)]


def tf_pixels(paths: Sequence[str], size) -> np.ndarray:
    return np.concatenate([batch.numpy() for _, batch, _ in
                           image_io.image_batches(paths, size, 32, ordered=True)])


def pillow_pixels(paths: Sequence[str], size) -> np.ndarray:
    """What a client without TensorFlow feeds: Pillow's bilinear resize, / 255."""
    from PIL import Image
    return np.stack([np.asarray(Image.open(p).convert('RGB').resize(
        (size[1], size[0]), Image.BILINEAR), np.float32) / 255 for p in paths])


def scores_of(work: str, pixels: np.ndarray) -> Dict[str, np.ndarray]:
    """The scores of every form of the model for `pixels`."""
    import onnxruntime
    import openvino
    with open(os.path.join(work, 'graph.pb'), 'rb') as f:
        graph_def = tf.compat.v1.GraphDef.FromString(f.read())
    frozen = tf.compat.v1.wrap_function(lambda x: tf.graph_util.import_graph_def(
        graph_def, input_map={'Placeholder:0': x}, return_elements=['final_result:0'])[0],
        [tf.TensorSpec([None, *pixels.shape[1:]], tf.float32)])
    serving = tf.saved_model.load(os.path.join(work, 'saved')).signatures['serving_default']
    path = os.path.join(work, 'model.onnx')
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    compiled = openvino.Core().compile_model(path, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    return {'frozen': frozen(tf.constant(pixels)).numpy(),
            'saved_model': serving(image=tf.constant(pixels))['prediction'].numpy(),
            'onnxruntime': session.run(None, {'image': pixels})[0],
            'openvino': compiled(pixels)[0]}


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix='bench_onnx_')
    onnx_flag = ('--onnx_output_file', os.path.join(work, 'model.onnx'))
    _retrain(args, work, '--saved_model_dir', os.path.join(work, 'saved'), *onnx_flag)  # Fills.
    runs = [(_retrain(args, work), _retrain(args, work, *onnx_flag))
            for _ in range(args.repeats)]  # Round robin: load on the machine hits both alike.
    without, with_onnx = (float(np.median(times)) for times in zip(*runs))
    writer = time_writer(args, work)

    paths = held_out(args.image_dir)
    size = load_extractor(RetrainConfig(tfhub_module=args.tfhub_module)).image_size
    scores = scores_of(work, tf_pixels(paths, size))
    top1 = scores['frozen'].argmax(1)
    import onnxruntime
    pillow = onnxruntime.InferenceSession(os.path.join(work, 'model.onnx')).run(
        None, {'image': pillow_pixels(paths, size)})[0]

    def agree(other: np.ndarray) -> float:
        return float(np.mean(other.argmax(1) == top1))

    results = {
        'held_out_images': len(paths),
        'run_s_without_onnx': round(without, 2), 'run_s_with_onnx': round(with_onnx, 2),
        'onnx_writer_alone_s': round(writer, 2),
        'onnx_bytes': os.path.getsize(os.path.join(work, 'model.onnx')),
        'frozen_graph_bytes': os.path.getsize(os.path.join(work, 'graph.pb')),
        'top1_onnxruntime_vs_frozen': agree(scores['onnxruntime']),
        'top1_openvino_vs_frozen': agree(scores['openvino']),
        'top1_onnxruntime_pillow_pixels_vs_frozen': agree(pillow),
        'max_abs_onnxruntime_vs_openvino': float(np.abs(scores['onnxruntime']
                                                        - scores['openvino']).max()),
        'max_abs_onnxruntime_vs_saved_model': float(np.abs(scores['onnxruntime']
                                                           - scores['saved_model']).max()),
        'max_abs_onnxruntime_vs_frozen': float(np.abs(scores['onnxruntime']
                                                      - scores['frozen']).max()),
        'load_average': round(os.getloadavg()[0], 2),
    }
    width = max(map(len, results))
    for name, value in results.items():
        print(f'{name:<{width}}  {value:.3g}' if isinstance(value, float)
              else f'{name:<{width}}  {value}')
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
