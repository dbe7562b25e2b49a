"""How good a --multi_label layer is at the usual step counts, against the best a linear sigmoid
layer does on the same bottlenecks (`python -m bench.bench_multilabel_quality`).

    python -m bench.make_multilabel_set ../shared/data/flower_photos_small SET --layout marked
    python -m bench.bench_multilabel_quality --image_dir SET --bottleneck_dir DIR
                                             [--steps 500,1000,4000] [--label_thresholds]

Gathers SET as `retrain --multi_label` does (class folders, the classic split, seed 0), fills or
reads the bottleneck cache, trains the layer with retrain's own loop at each step count and the
default learning rate, and prints test mAP, macro F1 and exact match. The last row is the
reference: a one-vs-rest logistic regression fitted to convergence (Newton's method to a
gradient under 1e-8) on the training images, its L2 weight (1e-4 to 0.1) chosen by the
validation images' log loss.
"""
import argparse
import dataclasses
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np
from absl import logging

from bench.shared_inputs import MODULE
from retrain import tasks
from retrain.cache import bottleneck_files
from retrain.cache.bottleneck_files import Bottlenecks
from retrain.common.errors import ToolError
from retrain.config import RetrainConfig
from retrain.features import loading
from retrain.train import loop, multilabel_metrics
from retrain.train.heads import SigmoidHead

L2_WEIGHTS = (1e-4, 1e-3, 1e-2, 1e-1)


def _with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x.astype(np.float64), np.ones((len(x), 1))])


def _log_loss(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    z = x @ w
    return float(np.mean(np.logaddexp(0, z) - y * z))


def _fit_label(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Weights (bias last, not penalized) minimizing the mean log loss + l2 / 2 |w|^2, by damped
    Newton steps until the gradient's largest entry is under 1e-8."""
    n, d = x.shape
    penalty = np.full(d, l2)
    penalty[-1] = 0.0
    w = np.zeros(d)

    def objective(w: np.ndarray) -> float:
        return _log_loss(x, y, w) + 0.5 * float(penalty @ (w * w))

    for _ in range(100):
        p = 1 / (1 + np.exp(-(x @ w)))
        gradient = x.T @ (p - y) / n + penalty * w
        if np.abs(gradient).max() < 1e-8:
            break
        hessian = (x * (p * (1 - p))[:, None]).T @ x / n + np.diag(penalty + 1e-12)
        step, size, before = np.linalg.solve(hessian, gradient), 1.0, objective(w)
        while objective(w - size * step) > before - 1e-4 * size * float(gradient @ step):
            size /= 2
            if size < 1e-10:
                break
        w = w - size * step
    return w


def reference(data: Bottlenecks) -> np.ndarray:
    """[features + 1, labels] weights of the converged one-vs-rest layer (module doc)."""
    x, y = _with_bias(data.features['training']), data.labels['training'].astype(np.float64)
    xv, yv = _with_bias(data.features['validation']), data.labels['validation'].astype(np.float64)
    best, chosen = np.inf, None
    for l2 in L2_WEIGHTS:
        w = np.stack([_fit_label(x, y[:, j], l2) for j in range(y.shape[1])], axis=1)
        loss = np.mean([_log_loss(xv, yv[:, j], w[:, j]) for j in range(y.shape[1])])
        if loss < best:
            best, chosen = loss, (l2, w)
    print(f'reference L2 weight {chosen[0]:g} (validation log loss {best:.4f})')
    return chosen[1]


def _measures(truth: np.ndarray, logits: np.ndarray) -> str:
    predictions = logits >= 0  # A sigmoid of at least 0.5.
    return (f'{multilabel_metrics.mean_average_precision(truth, logits):>6.3f} '
            f'{multilabel_metrics.macro_f1(truth, predictions):>9.3f} '
            f'{multilabel_metrics.exact_match(truth, predictions) * 100:>11.1f}%')


def main() -> None:
    parser = argparse.ArgumentParser(prog='python -m bench.bench_multilabel_quality',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--image_dir', required=True, help='a multi-label set of class folders')
    parser.add_argument('--bottleneck_dir', required=True)
    parser.add_argument('--tfhub_module', default=MODULE)
    parser.add_argument('--steps', default='500,1000,4000')
    parser.add_argument('--testing_percentage', type=int, default=20)
    parser.add_argument('--label_thresholds', action='store_true',
                        help='also each step count with thresholds chosen on validation')
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    config = RetrainConfig(image_dir=args.image_dir, bottleneck_dir=args.bottleneck_dir,
                           tfhub_module=args.tfhub_module, multi_label=True, random_seed=0,
                           testing_percentage=args.testing_percentage, summaries_dir='')
    task = tasks.task_for(config)
    try:
        gathered = task.gather()
        data, _ = bottleneck_files.load_or_compute(
            config.image_dir, gathered.examples, config.bottleneck_dir,
            loading.load_extractor(config), config.cache_batch_size, False)
    except ToolError as e:
        parser.error(str(e))
    x, truth = data.features['testing'].astype(np.float64), data.labels['testing']
    print(f'{len(gathered.labels)} labels; {len(data.labels["training"])} training, '
          f'{len(data.labels["validation"])} validation, {len(truth)} test images')
    print(f'{"layer":<34} {"mAP":>6} {"macro F1":>9} {"exact match":>12}')
    for steps in (int(s) for s in args.steps.split(',')):
        run = dataclasses.replace(config, how_many_training_steps=steps)
        head = loop.train(data, len(gathered.labels), run, head_type=SigmoidHead)
        print(f'{f"{steps} steps, rate 0.01":<34} {_measures(truth, head.logits(x))}')
        if args.label_thresholds:
            tuned = tasks.task_for(dataclasses.replace(run, label_thresholds=True)).tuned(
                data, head, gathered.labels)
            print(f'{f"{steps} steps, --label_thresholds":<34} '
                  f'{_measures(truth, tuned.logits(x))}')
    print(f'{"converged linear reference":<34} '
          f'{_measures(truth, _with_bias(x) @ reference(data))}')


if __name__ == '__main__':
    main()
