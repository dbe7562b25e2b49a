"""The settings of one retrain run: every classic flag, as a plain dataclass.

The CLI fills it from flags once; library code receives it (or the parts it needs) and never
reads global flags, so the pipeline can be driven from Python and tests alike.
"""
import dataclasses
from typing import Optional, Sequence

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
    # Multi-label: a sigmoid per label; labels from folders, per-image label files or a table.
    multi_label: bool = False
    image_labels_dir: str = ''
    image_labels_file: str = ''
