"""The run report's log lines, from real findings."""
import numpy as np

from retrain.cache.bottleneck_files import Bottlenecks
from retrain.config import RetrainConfig
from retrain.data.image_lists import CATEGORIES
from retrain.report import findings, run_report


def test_more_images_than_the_exact_search_takes_are_reported(tmp_path, caplog):
    """Past EXACT_SEARCH_LIMIT images every run once ended in an AttributeError after training
    (a parameter named like the module it read a constant of)."""
    caplog.set_level('INFO', logger='absl')
    count = findings.EXACT_SEARCH_LIMIT + 1
    rng = np.random.default_rng(0)
    labels = np.arange(count) % 3
    features = (rng.normal(size=(count, 16)) + 3 * np.eye(16)[labels]).astype(np.float32)
    paths = [str(tmp_path / f'{i}.jpg') for i in range(count)]
    for i, path in enumerate(paths):
        with open(path, 'w', encoding='ascii') as f:
            f.write(str(i))
    empty = {split: np.zeros((0, 16), np.float32) for split in CATEGORIES}
    data = Bottlenecks({**empty, 'training': features},
                       {**{s: np.zeros(0, np.int64) for s in CATEGORIES}, 'training': labels},
                       {**{s: [] for s in CATEGORIES}, 'training': paths})
    assert run_report.report_run(RetrainConfig(), ['a', 'b', 'c'], data, None, float('nan'),
                                 []) is None
    assert (f'Report: more than {findings.EXACT_SEARCH_LIMIT} images: near-duplicates were '
            'searched in buckets') in caplog.text
    assert f'among {count} images' in caplog.text
