"""The settings of one retrain run: every classic flag, as a plain dataclass.

The CLI fills it from flags once; library code receives it (or the parts it needs) and never
reads global flags, so the pipeline can be driven from Python and tests alike. Each setting and
its default is defined here and nowhere else: training, fine-tuning and the Beam cache take this
config (or its class defaults) rather than repeating fields that could drift apart.
"""
import dataclasses
import itertools
import math
from typing import List, Optional, Sequence, Tuple

from retrain.common import places
from retrain.export import graph_names
from retrain.common.errors import RetrainError

DEFAULT_TFHUB_MODULE = 'https://tfhub.dev/google/imagenet/inception_v3/feature_vector/3'


@dataclasses.dataclass
class RetrainConfig:
    image_dir: str = ''
    output_graph: str = '/tmp/output_graph.pb'
    intermediate_output_graphs_dir: str = '/tmp/intermediate_graph/'
    intermediate_store_frequency: int = 0
    output_labels: str = '/tmp/output_labels.txt'
    summaries_dir: str = '/tmp/retrain_logs'
    how_many_training_steps: int = 4000
    learning_rate: float = 0.01
    testing_percentage: int = 10
    validation_percentage: int = 10
    eval_step_interval: int = 10
    train_batch_size: int = 100
    test_batch_size: int = -1
    validation_batch_size: int = 100
    print_misclassified_test_images: bool = False
    bottleneck_dir: str = '/tmp/bottleneck'
    final_tensor_name: str = 'final_result'
    flip_left_right: bool = False
    random_crop: int = 0
    random_scale: int = 0
    random_brightness: int = 0
    tfhub_module: str = DEFAULT_TFHUB_MODULE
    saved_model_dir: str = ''
    checkpoint_path: str = '/tmp/_retrain_checkpoint'
    # Older generations: a legacy frozen graph instead of a hub module.
    model_dir: str = '/tmp/imagenet'
    architecture: str = 'inception_v3'
    use_legacy_model: bool = False
    # Beyond the classic flags.
    random_seed: Optional[int] = None
    image_size: int = 0
    # Fastest per image on CPU, MobileNet V1 and V2 alike (bench/bench.py).
    cache_batch_size: int = 32
    allow_truncated_images: bool = False
    # Extras: a TensorFlow Lite copy of the classifier, and fine-tuning the module itself.
    tflite_output_file: str = ''
    tflite_quantize: str = 'none'
    fine_tune_steps: int = 0
    fine_tune_learning_rate: float = 0.0001
    # Scale-out: fill the bottleneck cache on this Apache Beam runner with these Beam options.
    beam_runner: str = ''
    beam_pipeline_options: Sequence[str] = ()
    # The run report: findings logged in every run (report), a page and a file in report_dir.
    report: bool = True
    report_dir: str = ''
    # Multi-label: a sigmoid per label; labels from folders, per-image label files or a table.
    multi_label: bool = False
    image_labels_dir: str = ''
    image_labels_file: str = ''

    def check(self) -> None:
        """Raises ConfigError naming the first nonsense setting: a number out of range, flags
        that do not go together, or paths that would overwrite or remove one another.

        Checked before any work (the CLI exits 2 on it), so such a value never surfaces as a
        traceback deep in TensorFlow, nor as a run that trains on NaN.
        """
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ConfigError(f'--{name} must be {rule}, not {getattr(self, name)}')

        for name in ('learning_rate', 'fine_tune_learning_rate'):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, name, 'a finite number above 0')
        for name in ('how_many_training_steps', 'intermediate_store_frequency', 'fine_tune_steps',
                     'image_size', 'random_crop', 'random_scale', 'random_brightness'):
            need(getattr(self, name) >= 0, name, 'at least 0')
        need(self.random_brightness < 100, 'random_brightness',
             'below 100 (a factor 1 -/+ that percentage)')
        for name in ('testing_percentage', 'validation_percentage'):
            need(0 <= getattr(self, name) <= 100, name, 'a percentage from 0 to 100')
        held_out = self.testing_percentage + self.validation_percentage
        if held_out > 100:
            raise ConfigError('--testing_percentage and --validation_percentage must add up to '
                              f'at most 100, not {held_out}')
        for name in ('eval_step_interval', 'train_batch_size', 'cache_batch_size'):
            need(getattr(self, name) >= 1, name, 'at least 1')
        for name in ('test_batch_size', 'validation_batch_size'):
            need(getattr(self, name) == -1 or getattr(self, name) >= 1, name,
                 '-1 (all images) or at least 1')
        need(self.random_seed is None or 0 <= self.random_seed < 2 ** 63, 'random_seed',
             'from 0 to 2**63 - 1')
        if not self.multi_label and (self.image_labels_dir or self.image_labels_file):
            raise ConfigError('--image_labels_dir and --image_labels_file need --multi_label')
        if self.multi_label:
            if self.report_dir:
                raise ConfigError('--report_dir cannot be used with --multi_label yet')
        problem = graph_names.final_name_problem(self.final_tensor_name)
        if problem:
            raise ConfigError(f'--final_tensor_name {self.final_tensor_name!r} cannot name the '
                              f'output: {problem}')
        self._check_paths_apart()

    def _paths(self) -> List[Tuple[str, str, str]]:
        """(flag, path, kind) of every place the run reads or writes. Kinds: 'file' (written
        whole), 'replaced' (a folder replaced whole), 'folder' (written into), 'input'."""
        named = [('output_graph', 'file'), ('output_labels', 'file'),
                 ('tflite_output_file', 'file'), ('saved_model_dir', 'replaced'),
                 ('report_dir', 'replaced'), ('summaries_dir', 'folder'),
                 ('bottleneck_dir', 'folder'), ('image_dir', 'input'),
                 ('image_labels_dir', 'input'), ('image_labels_file', 'input'),
                 ('model_dir' if self.use_legacy_model else 'tfhub_module', 'input')]
        if self.intermediate_store_frequency > 0:
            named.append(('intermediate_output_graphs_dir', 'folder'))
        return [(flag, getattr(self, flag), kind) for flag, kind in named if getattr(self, flag)]

    def _check_paths_apart(self) -> None:
        """Raises ConfigError where one path would overwrite or remove another: two outputs, or
        an output and an input, on one path, or anything inside a file or a folder replaced whole
        (the run would lose a graph, the user's labels, a cache or a module)."""
        paths = [(flag, path, kind, places.place(path)) for flag, path, kind in self._paths()]
        for (flag, path, kind, key), (other, _, other_kind, other_key) in (
                itertools.combinations(paths, 2)):
            if key == other_key and {kind, other_kind} - {'folder', 'input'}:
                raise ConfigError(f'--{flag} and --{other} are the same path ({path}): '
                                  'the run would overwrite one with the other')
        for (outer, outer_path, kind, outer_key), (inner, inner_path, _, inner_key) in (
                itertools.permutations(paths, 2)):
            if kind in ('file', 'replaced') and places.is_inside(inner_key, outer_key):
                what = 'a file' if kind == 'file' else 'a folder the run replaces whole'
                raise ConfigError(f'--{inner} ({inner_path}) is inside --{outer} ({outer_path}), '
                                  f'{what}: put it elsewhere')


class ConfigError(RetrainError):
    """A setting no run can use: a usage error (exit code 2), found before any work starts."""
