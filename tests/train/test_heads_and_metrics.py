"""The sigmoid head, the sampler on label sets and the multi-label metrics."""
import numpy as np
import tensorflow as tf

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.tasks.multi_label import MultiLabel
from retrain.train import loop
from retrain.train import multilabel_metrics as metrics
from retrain.train.heads import Head, SigmoidHead
from retrain.train.sampler import Sampler


def _head(rng, size=7, labels=4) -> SigmoidHead:
    return SigmoidHead(rng.normal(0, 1, (size, labels)).astype(np.float32),
                       rng.normal(0, 1, labels).astype(np.float32))


def test_loss_and_gradient_step_match_tensorflow_sigmoid_cross_entropy():
    rng = np.random.default_rng(0)
    head = _head(rng)
    x = rng.normal(0, 3, (5, 7)).astype(np.float32)
    y = (rng.random((5, 4)) < 0.5).astype(np.float32)
    weights, biases = tf.Variable(head.weights), tf.Variable(head.biases)
    with tf.GradientTape() as tape:
        logits = x @ weights + biases
        # Summed over labels, averaged over images (the heads' docstring says why).
        loss = tf.reduce_mean(tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits), axis=1))
    grad_w, grad_b = tape.gradient(loss, [weights, biases])
    ours, accuracy = head.metrics(x, y)
    np.testing.assert_allclose(ours, loss.numpy(), rtol=1e-5)
    assert accuracy == np.mean((tf.sigmoid(logits).numpy() >= 0.5) == y)
    tf_loss, tf_accuracy = SigmoidHead.tf_metrics(logits, tf.constant(y))  # Fine-tuning's.
    np.testing.assert_allclose(float(tf_loss), ours, rtol=1e-5)
    assert float(tf_accuracy) == np.float32(accuracy)
    np.testing.assert_allclose(head.predict(x), tf.sigmoid(logits).numpy(), rtol=1e-5, atol=1e-6)
    head.step(x, y, 0.5)
    np.testing.assert_allclose(head.weights, weights.numpy() - 0.5 * grad_w.numpy(), rtol=1e-5)
    np.testing.assert_allclose(head.biases, biases.numpy() - 0.5 * grad_b.numpy(), rtol=1e-5)
    assert type(head.copy()) is SigmoidHead and head.activation == 'sigmoid'


def test_sampler_draws_a_label_uniformly_then_an_image_having_it():
    # Label 0 is on 90 images, label 1 on 10 (5 of them shared with label 0), label 2 on none.
    labels = np.zeros((95, 3), np.float32)
    labels[:90, 0] = 1
    labels[85:, 1] = 1
    sampler = Sampler(labels, 3, np.random.default_rng(0))
    chosen = sampler.sample(20000)
    only_label_1 = np.mean(chosen >= 90)
    # Half the draws pick label 1, and 5 of its 10 images have only it: about 1/4.
    assert abs(only_label_1 - 0.25) < 0.02
    assert abs(np.mean(labels[chosen, 1]) - 0.5 - 0.5 * 5 / 90) < 0.02


def test_training_separates_overlapping_labels_with_the_classic_loop(caplog):
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 1, (3, 16))

    def split(n):
        truth = (rng.random((n, 3)) < 0.4).astype(np.float32)
        return (truth @ centres + rng.normal(0, 0.1, (n, 16))).astype(np.float32), truth
    data = {c: split(n) for c, n in (('training', 200), ('validation', 40), ('testing', 60))}
    bottlenecks = Bottlenecks({c: d[0] for c, d in data.items()},
                              {c: d[1] for c, d in data.items()},
                              {c: [f'{c}_{i}.jpg' for i in range(len(d[1]))]
                               for c, d in data.items()})
    head = loop.train(bottlenecks, 3, RetrainConfig(
        how_many_training_steps=300, learning_rate=0.7, random_seed=0, summaries_dir=''),
        head_type=SigmoidHead)
    assert isinstance(head, SigmoidHead)
    scores = head.predict(data['testing'][0])
    assert metrics.exact_match(data['testing'][1], metrics.predicted(scores)) > 0.9
    assert metrics.mean_average_precision(data['testing'][1], scores) > 0.95


def test_metrics_on_small_cases_worked_by_hand():
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    scores = np.array([[0.9, 0.2], [0.8, 0.6], [0.7, 0.4], [0.1, 0.3]], np.float32)
    # Label 0 ranked 0.9 (hit) 0.8 (miss) 0.7 (hit): AP = (1 + 2/3) / 2. Label 1 ranked
    # 0.6 (hit) 0.4 (hit): AP = 1.
    assert abs(metrics.average_precision(truth[:, 0], scores[:, 0]) - 5 / 6) < 1e-9
    assert abs(metrics.mean_average_precision(truth, scores) - 11 / 12) < 1e-9
    predictions = metrics.predicted(scores)
    # Label 0: TP 2, FP 1, FN 0 -> 4/5. Label 1: TP 1, FP 0, FN 1 -> 2/3.
    assert abs(metrics.macro_f1(truth, predictions) - (4 / 5 + 2 / 3) / 2) < 1e-9
    assert metrics.exact_match(truth, predictions) == 0.5
    assert metrics.label_agreement(truth, predictions) == 6 / 8
    # A constant score is one threshold: precision 1/4 at recall 1.
    assert metrics.average_precision(np.array([1, 0, 0, 0]), np.zeros(4)) == 0.25


def _reference_average_precision(truth, scores) -> float:
    """AP as a plain threshold sweep: at each distinct score, highest first, precision and recall
    of 'score >= threshold'; AP = sum (R_n - R_n-1) P_n (scikit-learn's definition)."""
    truth, scores = np.asarray(truth, bool), np.asarray(scores, np.float64)
    total, previous_recall, ap = truth.sum(), 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        chosen = scores >= threshold
        precision = (chosen & truth).sum() / chosen.sum()
        recall = (chosen & truth).sum() / total
        ap += (recall - previous_recall) * precision
        previous_recall = recall
    return ap


def test_average_precision_counts_tied_scores_as_one_threshold():
    rng = np.random.default_rng(5)
    cases = [([1, 1, 0], [1.0, 1.0, 1.0]), ([0, 1, 1, 0, 1], [0.9, 0.9, 0.5, 0.5, 0.1]),
             ([1, 0, 0, 0], [0.0] * 4)]
    cases += [(rng.random(40) < 0.3, rng.integers(0, 5, 40) / 4.0) for _ in range(20)]
    for truth, scores in cases:
        truth = np.asarray(truth, np.float32)
        if truth.any():
            np.testing.assert_allclose(metrics.average_precision(truth, np.asarray(scores)),
                                       _reference_average_precision(truth, scores), rtol=1e-12)


def test_final_test_map_ranks_by_logits_that_float32_sigmoids_tie(caplog):
    # Logits 20 to 50: every float32 sigmoid is exactly 1.0, yet the positives rank first.
    features = np.array([[50.0], [20.0], [40.0], [25.0], [30.0], [-30.0]], np.float32)
    truth = np.array([[1], [0], [1], [0], [1], [0]], np.float32)
    head = SigmoidHead(np.ones((1, 1), np.float32), np.zeros(1, np.float32))
    assert (head.predict(features)[:5] == 1.0).all()
    data = Bottlenecks({c: features for c in ('training', 'validation', 'testing')},
                       {c: truth for c in ('training', 'validation', 'testing')},
                       {c: [f'{i}.jpg' for i in range(6)] for c in ('training', 'validation',
                                                                     'testing')})
    with caplog.at_level('INFO', logger='absl'):
        MultiLabel(RetrainConfig(multi_label=True)).test(data, head, ['cat'])
    assert _reference_average_precision(truth[:, 0], features[:, 0]) == 1.0
    assert 'Final test mAP = 1.000 (N=6)' in caplog.text


def _toy(rng, n: int, directions: np.ndarray):
    """Images with a random non-empty set of the labels (5% of them flipped, so that the
    converged layer is finite), features >= 0 of about MobileNet V2's squared norm (~230 here,
    ~700 there): a step moves a logit by learning_rate x squared norm, which a toy of unit
    features would make 500 times slower than real runs."""
    truth = (rng.random((n, len(directions))) < 0.4).astype(np.float32)
    truth[truth.sum(axis=1) == 0, 0] = 1
    noise = rng.normal(0, 0.5, (n, directions.shape[1]))
    x = (np.maximum(0, 0.5 + 0.5 * truth @ directions + noise) * 3).astype(np.float32)
    truth = np.where(rng.random(truth.shape) < 0.05, 1 - truth, truth)
    truth[truth.sum(axis=1) == 0, 0] = 1  # The sampler never draws an image without labels.
    return x, truth


def _sampled_loss(x: np.ndarray, truth: np.ndarray, w: np.ndarray) -> float:
    """The loss of [weights; biases] w under the sampler's distribution (a label, then an image
    having it)."""
    drawn = (truth / truth.sum(axis=0)).sum(axis=1) / truth.shape[1]
    logits = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64) @ w
    return float(drawn @ (np.logaddexp(0, logits) - truth * logits).sum(axis=1))


def _converged(x: np.ndarray, truth: np.ndarray, iterations: int = 4000) -> np.ndarray:
    """[weights; biases] minimizing the loss under the sampler's distribution (a label, then an
    image having it), by full-batch accelerated gradient descent to a gradient near 0."""
    drawn = (truth / truth.sum(axis=0)).sum(axis=1) / truth.shape[1]
    xa = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    rate = 4 / np.linalg.eigvalsh((xa * drawn[:, None]).T @ xa).max()
    w = v = np.zeros((xa.shape[1], truth.shape[1]))
    t = 1.0
    for _ in range(iterations):
        gradient = xa.T @ ((0.5 * (1 + np.tanh(0.5 * xa @ v)) - truth) * drawn[:, None])
        w_next, t_next = v - rate * gradient, (1 + np.sqrt(1 + 4 * t * t)) / 2
        v, w, t = w_next + (t - 1) / t_next * (w_next - w), w_next, t_next
    assert np.abs(gradient).max() < 1e-4
    return w


def test_two_labels_reach_the_converged_layer_in_500_steps_at_the_default_rate():
    num_labels = 2
    rng = np.random.default_rng(0)
    directions = rng.normal(0, 1, (num_labels, 32))
    x, truth = _toy(rng, 2000, directions)
    test_x, test_truth = _toy(rng, 400, directions)
    reference = _converged(x, truth)
    data = Bottlenecks({'training': x, 'validation': x[:0], 'testing': test_x},
                       {'training': truth, 'validation': truth[:0], 'testing': test_truth},
                       {'training': [''] * len(x), 'validation': [], 'testing': [''] * 400})
    head = loop.train(data, num_labels, RetrainConfig(
        how_many_training_steps=500, random_seed=0, summaries_dir='', eval_step_interval=500),
        head_type=SigmoidHead)
    # The loss the steps descend is near its least (without momentum: 0.09 above it here).
    trained = np.vstack([head.weights, head.biases[None]]).astype(np.float64)
    assert _sampled_loss(x, truth, trained) - _sampled_loss(x, truth, reference) < 0.02
    ours = head.logits(test_x.astype(np.float64))
    best = np.hstack([test_x, np.ones((400, 1))]) @ reference
    assert np.mean((ours >= 0) == (best >= 0)) > 0.98
    assert abs(metrics.mean_average_precision(test_truth, ours)
               - metrics.mean_average_precision(test_truth, best)) < 0.005
    assert abs(metrics.exact_match(test_truth, ours >= 0)
               - metrics.exact_match(test_truth, best >= 0)) < 0.02


def test_the_sigmoid_layer_trains_centred_so_a_shared_offset_changes_nothing():
    """Bottlenecks share a large positive mean; the layer learns on them minus their training
    mean, so adding a constant to every bottleneck gives the same scores. A softmax layer
    trains on them as they are (classic values, bit for bit)."""
    rng = np.random.default_rng(0)
    x, truth = _toy(rng, 300, rng.normal(0, 1, (2, 32)))
    config = RetrainConfig(how_many_training_steps=200, random_seed=0, summaries_dir='')

    def trained(features, head_type, y):
        data = Bottlenecks({'training': features, 'validation': features[:0]},
                           {'training': y, 'validation': y[:0]},
                           {'training': [''] * len(features), 'validation': []})
        return loop.train(data, 2, config, head_type=head_type, log=False)

    shifted = (x + 3.0).astype(np.float32)
    plain, moved = trained(x, SigmoidHead, truth), trained(shifted, SigmoidHead, truth)
    np.testing.assert_allclose(moved.logits(shifted.astype(np.float64)),
                               plain.logits(x.astype(np.float64)), atol=1e-3)
    classes = truth[:, 0].astype(np.int64)
    assert not np.allclose(trained(shifted, Head, classes).weights,
                           trained(x, Head, classes).weights, atol=1e-3)


def test_label_cuts_move_from_0_5_only_where_that_gets_more_images_right():
    truth = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
    logits = np.array([[2.0, -1.0, -3.0],   # Label 0: 0.5 is right for all: keep it.
                       [1.0, -2.5, -2.0],   # Label 1: positives at -1 and -0.5 (below 0.5),
                       [-1.0, -0.5, -1.0],  # negatives at -2.5 and -3: the cut between them.
                       [-2.0, -3.0, 1.0]])  # Label 2: no positives: above the highest logit.
    cuts = metrics.best_cuts(truth, logits)
    np.testing.assert_allclose(cuts, [0.0, -1.75, 2.0])
    head = SigmoidHead(np.eye(3, dtype=np.float32), np.zeros(3, np.float32)).shifted(cuts)
    assert (metrics.predicted(head.predict(logits.astype(np.float32))) == truth.astype(bool)).all()
