"""The settings of one retrain run: every classic flag, as a plain dataclass.

Each setting is declared once, here: its default, the help text of its flag, its allowed values
and, for paths, what the run does with the place (field metadata, see `setting`). retrain.cli
builds the flags from these fields; library code receives the config (or the parts it needs) and
never reads global flags, so the pipeline can be driven from Python and tests alike.

A RetrainConfig is checked when it is made (ConfigError names the first nonsense setting), so a
config that exists is one a run can use; change one with `dataclasses.replace`, which checks the
new one. Free of TensorFlow: the CLI checks the flags before the slow import.
"""
import dataclasses
import importlib.util
import itertools
import math
import os
import re
from typing import Any, Callable, List, Optional, Sequence, Tuple

from retrain.common import graph_names, places
from retrain.common.errors import ConfigError
from retrain.common.logs import readable
from retrain.data import image_files

DEFAULT_TFHUB_MODULE = 'https://tfhub.dev/google/imagenet/inception_v3/feature_vector/3'

# What a run does with a path setting (the `place` of its metadata). Two paths may name one place
# or lie one inside the other only where neither is lost: see check_apart.
FILE = 'file'          # an output file, written whole
REPLACED = 'replaced'  # an output folder, replaced whole
FOLDER = 'folder'      # a folder written into as the run goes (it may hold other files)
INPUT = 'input'        # read by the run
_PLACES = (FILE, REPLACED, FOLDER, INPUT)


# The modules of each optional extra (setup.cfg) that a setting with `extra` needs.
EXTRAS = {'onnx': ('tf2onnx', 'onnx', 'onnxruntime')}


def setting(default: Any, help_text: str, **metadata: Any) -> Any:
    """A config field: its default and its flag's help, plus `choices` (an enum flag),
    `place` (one of the kinds above, for paths) or `extra` (an EXTRAS key: the setting, when set,
    needs that extra installed). Fields without help are not flags."""
    return dataclasses.field(default=default, metadata={'help': help_text, **metadata})


@dataclasses.dataclass
class RetrainConfig:
    """The run's settings; the fields are the flags of `retrain` (see their help)."""
    image_dir: str = setting(
        '', 'Path to folders of labeled images; each sub-folder is a class. If empty, '
        'TensorFlow\'s flower_photos is downloaded and used.', place=INPUT)
    output_graph: str = setting('/tmp/output_graph.pb', 'Where to save the trained graph.',
                                place=FILE)
    intermediate_output_graphs_dir: str = setting(
        '/tmp/intermediate_graph/', 'Where to save the intermediate graphs.', place=FOLDER)
    intermediate_store_frequency: int = setting(
        0, 'How many steps to store intermediate graph. If 0, none are stored.')
    output_labels: str = setting('/tmp/output_labels.txt',
                                 'Where to save the trained graph\'s labels.', place=FILE)
    summaries_dir: str = setting('/tmp/retrain_logs', 'Where to save summary logs for '
                                 'TensorBoard (cleared at the start of a run).', place=FOLDER)
    how_many_training_steps: int = setting(
        4000, 'How many training steps to run before ending. 0: only fill the bottleneck cache; '
        'no model or other output is written.')
    learning_rate: float = setting(0.01, 'How large a learning rate to use.')
    testing_percentage: int = setting(10, 'What percentage of images to use as a test set.')
    validation_percentage: int = setting(
        10, 'What percentage of images to use as a validation set.')
    eval_step_interval: int = setting(10, 'How often to evaluate the training results.')
    train_batch_size: int = setting(100, 'How many images to train on at a time.')
    test_batch_size: int = setting(-1, 'How many images to test on. -1 means the entire test '
                                   'set.')
    validation_batch_size: int = setting(
        100, 'How many images to use in an evaluation batch. -1 means the entire validation set.')
    print_misclassified_test_images: bool = setting(
        False, 'Whether to print out a list of all misclassified test images.')
    bottleneck_dir: str = setting('/tmp/bottleneck', 'Path to cache bottleneck layer values as '
                                  'files.', place=FOLDER)
    final_tensor_name: str = setting(
        'final_result', 'The name of the output classification layer in the retrained graph.')
    flip_left_right: bool = setting(
        False, 'Whether to randomly flip half of the training images horizontally.')
    random_crop: int = setting(0, 'A percentage determining how much of a margin to randomly '
                               'crop off the training images.')
    random_scale: int = setting(0, 'A percentage determining how much to randomly scale up the '
                                'size of the training images by.')
    random_brightness: int = setting(0, 'A percentage determining how much to randomly multiply '
                                     'the training image input pixels up or down by.')
    tfhub_module: str = setting(
        DEFAULT_TFHUB_MODULE, 'Which TensorFlow Hub image feature vector module to use: a URL, a '
        'local folder or a local .tar.gz.', place=INPUT)
    saved_model_dir: str = setting(
        '', 'Where to save the exported SavedModel for TF Serving (none if empty).',
        place=REPLACED)
    checkpoint_path: str = setting('/tmp/_retrain_checkpoint', 'Accepted for compatibility; '
                                   'training runs in memory and writes no checkpoint.')
    # Older generations: a legacy frozen graph instead of a hub module.
    model_dir: str = setting('/tmp/imagenet', 'Legacy mode: folder holding (or receiving) the '
                             'classic frozen-graph archive of --architecture.', place=INPUT)
    architecture: str = setting(
        'inception_v3', 'Legacy mode: inception_v3 or '
        'mobilenet_<1.0|0.75|0.50|0.25>_<224|192|160|128>[_quantized].')
    # Not a flag: the CLI sets it when --model_dir or --architecture come without --tfhub_module.
    use_legacy_model: bool = False
    # Beyond the classic flags.
    random_seed: Optional[int] = setting(None, 'Seed for all randomness; set it for identical '
                                         'runs.')
    image_size: int = setting(0, 'Input size for modules whose input size is not fixed '
                              '(default 224).')
    # Fastest per image on CPU, MobileNet V1 and V2 alike (bench/bench.py).
    cache_batch_size: int = setting(8, 'How many images to run through the model at once while '
                                    'caching (8 suits CPUs: as fast as 32 and 350 MB less memory '
                                    'with MobileNet V2; on a GPU, 64 or more).')
    allow_truncated_images: bool = setting(
        False, 'Use what a truncated JPEG holds (at least 10% of its rows, the rest gray) instead '
        'of skipping it.')
    fast_jpeg_decoding: bool = setting(
        True, 'While caching, decode JPEGs of at least 4 times the model\'s input on each side at '
        '1/2, 1/4 or 1/8 scale, keeping at least twice the input (12 MP photos cache about 1.5 '
        'times as fast). Those values are not the classic ones: they are cached as '
        '*_scaled_jpegs.txt, and only for images without a classic cache file. '
        '--nofast_jpeg_decoding decodes at full scale, as the classic scripts did.')
    # Extras: TensorFlow Lite and ONNX copies of the classifier, and fine-tuning the module itself.
    tflite_output_file: str = setting(
        '', 'Also write the classifier as TensorFlow Lite here: float image [1, H, W, 3] in '
        '[0, 1] in, softmax out.', place=FILE)
    tflite_quantize: str = setting(
        'none', 'Quantization of --tflite_output_file: dynamic (int8 weights) or int8 (weights '
        'and activations, calibrated on training images; without the unknown score, which int8 '
        'would clip).', choices=('none', 'dynamic', 'int8'))
    onnx_output_file: str = setting(
        '', 'Also write the classifier as ONNX here (needs the onnx extra): float image '
        '[N, H, W, 3] in [0, 1] in, scores out, labels in its metadata.', place=FILE,
        extra='onnx')
    fine_tune_steps: int = setting(0, 'After training the new layer, train it together with the '
                                   'module\'s own variables for this many steps.')
    fine_tune_learning_rate: float = setting(0.0001,
                                             'Learning rate of the --fine_tune_steps steps.')
    # Scale-out: fill the bottleneck cache on this Apache Beam runner with these Beam options.
    beam_runner: str = setting(
        '', 'Compute the bottleneck cache with an Apache Beam pipeline on this runner '
        '(DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, DaskRunner ...); needs the beam '
        'extra. Empty: compute in this process.')
    beam_pipeline_options: Sequence[str] = setting(
        (), 'Comma-separated Beam pipeline options for --beam_runner, e.g. '
        '--beam_pipeline_options=--project=p,--region=r,--temp_location=gs://b/tmp')
    # The run report: findings logged in every run (report), a page and a file in report_dir.
    report: bool = setting(True, 'Log duplicates, split leaks and suspected label errors found '
                           'in the bottlenecks (about a second); --noreport skips it.')
    report_dir: str = setting(
        '', 'Also write the run report here: index.html (opens from disk) and report.json. A new '
        'or empty folder, or an old report.', place=REPLACED)
    # Multi-label: a sigmoid per label; labels from folders, per-image label files or a table.
    multi_label: bool = setting(
        False, 'Train a sigmoid per label (an image may have several labels): an image file in '
        'several class folders has all their labels, or see --image_labels_dir and '
        '--image_labels_file.')
    image_labels_dir: str = setting(
        '', 'With --multi_label: folder of <image file name>.txt files, one label a line (the '
        'Multi-label-Inception-net fork\'s layout); folders then only hold images.', place=INPUT)
    image_labels_file: str = setting(
        '', 'A UTF-8 CSV of rows path/relative/to/image_dir.jpg,label (header optional): one label '
        'per image, or with --multi_label label1;label2. Images may lie anywhere below '
        '--image_dir.', place=INPUT)
    label_thresholds: bool = setting(
        False, 'With --multi_label: choose each label\'s threshold on the validation images (the '
        'one that gets most of them right) and build it into the layer, so that a score of 0.5 '
        'in every output means that threshold.')
    # The user's own split: train/, validation/ (or val/) and test/ folders instead of the hash.
    split_folders: bool = setting(
        False, '--image_dir holds train/, validation/ (or val/) and optionally test/, each with '
        'the class folders: use exactly that split (no --testing_percentage or '
        '--validation_percentage).')
    calibrate: bool = setting(
        False, 'Fit a temperature on the validation images so that the scores are calibrated '
        '(of images scored 0.8, about 80% right), and build it into every output; logs the '
        'validation calibration error before and after. Single-label runs.')
    # Not a flag: the CLI sets it when --testing_percentage or --validation_percentage is given.
    percentages_given: bool = False

    def __post_init__(self) -> None:
        self.check()

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
        for name in ('eval_step_interval', 'cache_batch_size'):
            need(getattr(self, name) >= 1, name, 'at least 1')
        # Empty, the cache would land in the current folder (class folders and all).
        need(self.bottleneck_dir, 'bottleneck_dir', 'a folder')
        need(self.use_legacy_model or self.tfhub_module, 'tfhub_module',
             'a module (a URL, a local folder or a .tar.gz)')
        for name in ('train_batch_size', 'test_batch_size', 'validation_batch_size'):
            need(getattr(self, name) == -1 or getattr(self, name) >= 1, name,
                 '-1 (all images) or at least 1')
        need(self.random_seed is None or 0 <= self.random_seed < 2 ** 63, 'random_seed',
             'from 0 to 2**63 - 1')
        for field in dataclasses.fields(self):
            choices = field.metadata.get('choices')
            need(not choices or getattr(self, field.name) in choices, field.name,
                 f'one of {", ".join(choices or ())}')
        for field in dataclasses.fields(self):
            extra = field.metadata.get('extra')
            if extra and getattr(self, field.name) and not extra_installed(extra):
                raise ConfigError(f'--{field.name} needs the {extra} extra: '
                                  f"pip install '.[{extra}]'")
        if not self.image_dir:  # The flower photos come without labels files or split folders.
            for name in ('image_labels_dir', 'image_labels_file', 'split_folders'):
                if getattr(self, name):
                    raise ConfigError(f'--{name} needs --image_dir, the folder its images are in')
        if self.image_labels_dir and not self.multi_label:
            raise ConfigError('--image_labels_dir needs --multi_label')
        if self.label_thresholds and not self.multi_label:
            raise ConfigError('--label_thresholds needs --multi_label')
        if self.split_folders:
            self._check_split_folders()
        if self.multi_label and self.calibrate:
            raise ConfigError('--calibrate is for single-label runs, not --multi_label')
        problem = graph_names.final_name_problem(self.final_tensor_name)
        if problem:
            raise ConfigError(f'--final_tensor_name {self.final_tensor_name!r} cannot name the '
                              f'output: {problem}')
        check_apart(self.paths(), self._reads)
        self._check_intermediate_names()

    def _check_split_folders(self) -> None:
        """The folders are the split and hold class folders: percentages (given on the command
        line, or other than the defaults) would contradict them, label files do not go there."""
        defaults = {name: RetrainConfig.__dataclass_fields__[name].default
                    for name in ('testing_percentage', 'validation_percentage')}
        if self.percentages_given or any(getattr(self, name) != default
                                         for name, default in defaults.items()):
            raise ConfigError('--split_folders takes the split from the folders: drop '
                              '--testing_percentage and --validation_percentage')
        for name in ('image_labels_dir', 'image_labels_file'):
            if getattr(self, name):
                raise ConfigError(f'--split_folders reads class folders only, not --{name}')

    @property
    def distortions_enabled(self) -> bool:
        return bool(self.flip_left_right or self.random_crop or self.random_scale
                    or self.random_brightness)

    def paths(self) -> List[Tuple[str, str, str]]:
        """(flag, path, place) of every place the run reads or writes (module doc's kinds):
        outputs first, then folders written into, then inputs (the order messages name them)."""
        unused = {'intermediate_output_graphs_dir': self.intermediate_store_frequency == 0,
                  'model_dir': not self.use_legacy_model, 'tfhub_module': self.use_legacy_model}
        found = [(field.name, getattr(self, field.name), field.metadata.get('place'))
                 for field in dataclasses.fields(self)]
        return sorted(((flag, path, kind) for flag, path, kind in found
                       if kind and path and not unused.get(flag)),
                      key=lambda found: _PLACES.index(found[2]))

    def _check_intermediate_names(self) -> None:
        """Raises ConfigError for an output file that the run's intermediate graphs would
        overwrite (`intermediate_<step>.pb` in their folder), or be overwritten by."""
        if not self.intermediate_store_frequency:
            return
        folder = places.place(self.intermediate_output_graphs_dir)
        for flag, path, kind in self.paths():
            name = os.path.basename(places.place(path))
            if (kind == FILE and os.path.dirname(places.place(path)) == folder
                    and re.fullmatch(r'intermediate_[0-9]+\.pb', name)):
                raise ConfigError(f'--{flag} ({path}) is named as an intermediate graph in '
                                  '--intermediate_output_graphs_dir, which the run writes as '
                                  'it goes: name it otherwise')

    @staticmethod
    def _reads(flag: str, folder: str, inner: str, kind: str) -> bool:
        """Whether the run reads what lies at place `inner` (an output of `kind`) below the input
        `folder` of `flag`.

        Anything below the module, the label files' folder or the table; below the image folder,
        what is in its sub-folders (the class folders), image files at its top (the layouts of
        tables and label files) and folders (a new one at its top would be taken for a class),
        while output files may sit at its top (`--image_dir .`); below the legacy model folder,
        which receives downloads, only its existing files.
        """
        if flag == 'image_dir':
            relative = os.path.relpath(inner, folder)
            if kind == REPLACED:
                return True
            return os.sep in relative or image_files.has_image_extension(relative)
        if flag == 'model_dir':
            return os.path.isfile(inner)
        return True


def check_apart(found: Sequence[Tuple[str, str, str]],
                reads: Callable[[str, str, str, str], bool] = lambda *_: True) -> None:
    """Raises ConfigError where one of `found` (flag, path, kind; outputs first) would overwrite
    or remove another: two outputs, or an output and an input, on one path; anything inside a
    file or a folder replaced whole (the run would lose a graph, the user's labels, a cache or a
    module); an output inside what the run reads (`reads(flag, folder, inner, kind)` says, for
    an output at place `inner` below the input `folder` of `flag`: an image, a label file, the
    module). A flag in capitals is a positional argument, named as it is."""
    for flag, path, kind in found:
        if kind != INPUT and not places.is_utf8(path):  # Inputs are read by os where gfile fails.
            raise ConfigError(f'{_shown(flag)} {readable(path)} is not a UTF-8 name, which '
                              'TensorFlow cannot write to; choose another')
    paths = [(_shown(flag), path, kind, places.place(path)) for flag, path, kind in found]
    for (flag, path, kind, key), (other, _, other_kind, other_key) in (
            itertools.combinations(paths, 2)):
        if key == other_key and {kind, other_kind} - {FOLDER, INPUT}:
            raise ConfigError(f'{flag} and {other} are the same path ({path}): '
                              'the run would overwrite one with the other')
    for (outer, outer_path, kind, outer_key), (inner, inner_path, inner_kind, inner_key) in (
            itertools.permutations(paths, 2)):
        if not places.is_inside(inner_key, outer_key):
            continue
        if kind in (FILE, REPLACED):
            what = 'a file' if kind == FILE else 'a folder the run replaces whole'
            raise ConfigError(f'{inner} ({inner_path}) is inside {outer} ({outer_path}), '
                              f'{what}: put it elsewhere')
        if kind == INPUT and inner_kind in (FILE, REPLACED) and reads(
                outer.lstrip('-'), outer_key, inner_key, inner_kind):
            raise ConfigError(f'{inner} ({inner_path}) is inside {outer} ({outer_path}), '
                              'which the run reads: the output would replace or join its '
                              'inputs; put it elsewhere')


def _shown(flag: str) -> str:
    return flag if flag.isupper() else f'--{flag}'


def extra_installed(extra: str) -> bool:
    """Whether the modules of the optional `extra` (an EXTRAS key) can be imported: found, not
    imported, so the check costs nothing before any work."""
    return all(importlib.util.find_spec(module) is not None for module in EXTRAS[extra])


