"""Every output of a run, in one table: what the checks before any work, the staging at the end
and the `Wrote ...` lines all loop over.

An entry names the RetrainConfig field that holds the output's path (its `place` in the field's
metadata says whether it is a file, a folder replaced whole or a folder written into) and the
module that writes it. A writer module has
  write_output(path, trained)   writes the output to `path` (a temporary, moved into place with
                                the others: retrain.export.staging)
  wrote_line(path, trained)     the log line once it is in place (`Wrote graph to ...`)
  check_output(path)            optional: refuses, before any work, a place it must not replace
Outputs without a writer are folders the run writes into as it goes; they are only checked.

To add an output format: a writer module, an entry below, its field in RetrainConfig (flag and
help come from it) and a README row. Free of TensorFlow, like the config that reads it: writer
modules are imported when the run writes.
"""
import dataclasses
import importlib
from types import ModuleType
from typing import Any, Dict, Iterator, List, Optional, Tuple

from retrain.config import RetrainConfig


@dataclasses.dataclass(frozen=True)
class Output:
    """One output: the config field holding its path, the module writing it (None: a folder
    written into during the run)."""
    flag: str
    writer: Optional[str] = None

    def module(self) -> ModuleType:
        return importlib.import_module(self.writer)


# In the order they are written and logged.
OUTPUTS = (
    Output('output_graph', 'retrain.export.frozen_graph'),
    Output('tflite_output_file', 'retrain.export.tflite'),
    Output('onnx_output_file', 'retrain.export.onnx'),
    Output('output_labels', 'retrain.export.labels_file'),
    Output('saved_model_dir', 'retrain.export.saved_model'),
    Output('report_dir', 'retrain.report.page'),
    Output('summaries_dir'),
    Output('intermediate_output_graphs_dir'),
)


def wanted(config: RetrainConfig) -> Iterator[tuple]:
    """(output, path, place) of each output this run writes."""
    places = {flag: (path, place) for flag, path, place in config.paths()}
    for output in OUTPUTS:
        if output.flag in places:
            yield (output, *places[output.flag])


@dataclasses.dataclass
class Trained:
    """What the outputs are written from: the run's settings, model and labels."""
    config: RetrainConfig
    extractor: Any  # retrain.features.extractors.FeatureExtractor
    head: Any  # retrain.train.heads.Head
    labels: List[str]
    training_paths: List[str]  # The int8 TFLite model calibrates on them.
    report: Optional[Dict] = None  # The run report's data, for --report_dir.
    unknown: Any = None  # retrain.train.unknown.Fitted: the judgement the outputs carry, or None.
    graph_def: Any = None  # Built once by the first writer that needs it (frozen_graph.graph_of).
    # The SavedModel's serving_default (input, output) keys; None: retrain's.
    signature_keys: Optional[Tuple[str, str]] = None
