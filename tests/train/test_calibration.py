"""retrain.train.calibration and --calibrate's place in a single-label run."""
import numpy as np

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.tasks.single_label import SingleLabel
from retrain.train import calibration
from retrain.train.heads import Head


def _toy(temperature: float, count: int = 4000, classes: int = 4, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): T is the true temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (count, classes))
    shifted = logits / temperature
    probabilities = np.exp(shifted - shifted.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in probabilities])
    return logits, labels


def test_a_known_temperature_is_recovered():
    for temperature in (0.5, 2.0):
        logits, labels = _toy(temperature)
        assert abs(calibration.fit_temperature(logits, labels) / temperature - 1) < 0.08


def test_calibration_error_falls_once_the_temperature_is_built_into_the_layer():
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 1, (6, 3)).astype(np.float32)
    biases = np.zeros(3, np.float32)
    features = rng.normal(0, 1, (3000, 6)).astype(np.float32)
    shifted = features @ weights / 3.0  # Labels drawn from softmax(logits / 3): overconfident.
    probabilities = np.exp(shifted - shifted.max(1, keepdims=True))
    labels = np.array([rng.choice(3, p=p / p.sum()) for p in probabilities])
    split = {'training': 0, 'validation': 2000, 'testing': 1000}
    parts = np.split(np.arange(3000), [2000])
    data = Bottlenecks({'training': features[:0], 'validation': features[parts[0]],
                        'testing': features[parts[1]]},
                       {'training': labels[:0], 'validation': labels[parts[0]],
                        'testing': labels[parts[1]]}, {k: [''] * n for k, n in split.items()})
    head = Head(weights, biases)
    off = SingleLabel(RetrainConfig()).tuned(data, head, [])
    assert off is head  # Off by default: the layer, and final_result, as trained.
    tuned = SingleLabel(RetrainConfig(calibrate=True)).tuned(data, head, [])
    np.testing.assert_allclose(tuned.weights * 3.0, weights, rtol=0.1, atol=0.02)
    test_x, test_y = data.features['testing'], data.labels['testing']
    assert (tuned.predict(test_x).argmax(1) == head.predict(test_x).argmax(1)).all()
    before = calibration.expected_calibration_error(head.predict(test_x), test_y)
    after = calibration.expected_calibration_error(tuned.predict(test_x), test_y)
    assert after < 0.05 < before


def test_validation_images_all_classified_right_leave_the_layer_as_trained(caplog):
    """All right, any smaller T lowers their NLL: the fit ran to T = 0.02 and made the scores
    of images the layer gets wrong 0.9999. No temperature is fitted then, and the log says so."""
    rng = np.random.default_rng(2)
    weights = rng.normal(0, 1, (6, 3)).astype(np.float32)
    features = rng.normal(0, 1, (40, 6)).astype(np.float32)
    labels = (features @ weights).argmax(1)
    assert calibration.fit_temperature(features @ weights, labels) is None
    # Margins of 5 or more: below T = 0.13 or so their NLL rounds to 0, a flat floor the search
    # stopped on, far from the range's edge.
    clear = np.array([[5.0, 0.0], [0.0, 5.0], [6.0, 1.0], [1.0, 7.0]])
    assert calibration.fit_temperature(clear, np.array([0, 1, 0, 1])) is None
    data = Bottlenecks({'training': features[:0], 'validation': features},
                       {'training': labels[:0], 'validation': labels},
                       {'training': [], 'validation': [''] * 40})
    head = Head(weights, np.zeros(3, np.float32))
    task = SingleLabel(RetrainConfig(calibrate=True))
    assert task.tuned(data, head, []) is head
    assert 'the 40 validation images do not determine a temperature (all 40 are classified ' \
        'right)' in caplog.text
    wrong = labels.copy()
    wrong[:4] = (wrong[:4] + 1) % 3  # A few wrong: a temperature is found again.
    assert 0.02 < calibration.fit_temperature(features @ weights, wrong) < 55
