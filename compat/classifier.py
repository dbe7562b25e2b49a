"""One classifier interface over every format a retrained model comes in.

`load(path)` accepts a frozen GraphDef of any generation, a SavedModel folder (signature
`serving_default`), a `.tflite` file or an `.onnx` file (run by ONNX Runtime), checks it is
safe to run, works out its entry point and preprocessing (compat.signature) and returns a
Classifier: `classify` takes decoded [0, 1] images or encoded bytes, in batches, and returns
class probabilities.
"""
import argparse
import dataclasses
import os
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
from google.protobuf import message

from compat import graphs, onnx_model, safety, signature, tflite
from compat.signature import InputSpec
from retrain.common import fileio, places
from retrain.common.errors import ToolError, error_summary
from retrain.common.graph_names import KERAS_MODEL_KEYS, SAVED_MODEL_KEYS, UNKNOWN_SCORE, judges
from retrain.common.tf_internals import saved_model_pb2
from retrain.data import image_io
from retrain.features import graph_files

Batch = Union[np.ndarray, tf.Tensor]
Images = Union[Batch, Sequence[bytes]]

# The formats a model comes in (Classifier.format), as reports name them.
FROZEN_GRAPH, SAVED_MODEL, TFLITE, ONNX = ('frozen GraphDef', 'SavedModel', 'TensorFlow Lite',
                                           'ONNX')
# ONNX Runtime's input types, as TensorFlow names them.
_ONNX_TYPES = {'tensor(float)': tf.float32, 'tensor(uint8)': tf.uint8,
               'tensor(string)': tf.string}
# Who makes a SavedModel of these serving_default keys (Classifier.kind, `made by` in inspect).
_SAVED_MODEL_MAKERS = {SAVED_MODEL_KEYS: 'retrain --saved_model_dir or compat convert',
                       KERAS_MODEL_KEYS: "make_image_classifier (its Keras model's keys)"}
# Output ops whose scores are probabilities (TensorFlow's and TFLite's names).
PROBABILITY_OPS = frozenset(['Softmax', 'Sigmoid', 'SOFTMAX', 'LOGISTIC'])

# What a model that cannot tell images unlike its training images is said to carry.
NO_JUDGEMENT = ('unknown judgement: none (no unknown_score: it cannot say an image is unlike '
                'its training images)')


def not_probabilities(output_op: str) -> str:
    """Says that scores from `output_op` are not probabilities; '' if they are or it is unknown."""
    if not output_op or output_op in PROBABILITY_OPS:
        return ''
    return f'scores are not probabilities: the output is a {output_op} op, not Softmax or Sigmoid'


@dataclasses.dataclass(frozen=True)
class Overrides:
    """The classic label_image flags; None means: work it out from the model."""
    input_layer: Optional[str] = None
    output_layer: Optional[str] = None
    size: Optional[Tuple[int, int]] = None
    mean: Optional[float] = None
    std: Optional[float] = None

    @classmethod
    def from_args(cls, args: argparse.Namespace,
                  size: Optional[Tuple[int, int]] = None) -> 'Overrides':
        """The flags of retrain.common.cli_args.add_override_arguments (and the size flags)."""
        return cls(args.input_layer, args.output_layer, size, args.input_mean, args.input_std)


@dataclasses.dataclass
class Classifier:
    """A loaded model. `run` maps one batch, already as the entry tensor takes it, to scores."""
    path: str
    format: str
    kind: str            # which generation or tool made it, for -v and inspect
    spec: InputSpec
    output: str
    num_classes: Optional[int]
    run: Callable[[Batch], np.ndarray]
    multi_label: bool = False  # independent sigmoid scores per label, not one softmax
    output_op: str = ''        # the op computing the scores (Softmax...), '' where unknown
    labels: Optional[List[str]] = None  # the labels the file carries (ONNX, TFLite), in order
    # The output scoring how unlike the training images each image is (retrain.train.unknown:
    # above 0 is unknown), '' where the model has none; `run` then returns it as a last column.
    unknown_output: str = ''

    @property
    def takes_encoded(self) -> bool:
        return self.spec.encoded

    def prepare(self, contents: bytes) -> Union[np.ndarray, bytes]:
        """One encoded image -> what `classify` takes (decoded [0, 1] floats or the bytes).

        Raises tf.errors.OpError if the bytes are not an image.
        """
        if self.spec.encoded:
            image_io.decode(tf.constant(contents))
            return contents
        return image_io.decode_and_resize(tf.constant(contents), self.spec.size).numpy()

    def classify(self, images: Images) -> np.ndarray:
        """Images -> float [N, classes]: [N, H, W, 3] floats in [0, 1] (array or tensor), or a
        list of bytes."""
        return self.classify_judged(images)[0]

    def classify_judged(self, images: Images) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """As classify, with each image's unknown score where the model carries one (else
        None): one run gives both."""
        decoded = isinstance(images, (np.ndarray, tf.Tensor))
        if self.spec.encoded:
            if decoded:
                raise ToolError(f'{self.spec.tensor} of {self.path} takes encoded images only')
            batch = np.array(list(images), dtype=object)
        else:
            if not decoded:
                images = np.stack([self.prepare(contents) for contents in images])
            batch = self.spec.normalize(images)
        results = self._run_in_chunks(batch)
        if not self.unknown_output:
            return results, None
        return results[:, :-1], results[:, -1]

    def describe(self) -> str:
        classes = f'{self.num_classes} classes' if self.num_classes else 'classes unknown'
        if self.multi_label:
            classes += ', multi-label: a sigmoid score per label'
        if not_probabilities(self.output_op):
            classes += ', ' + not_probabilities(self.output_op)
        judged = (f'\n  unknown {self.unknown_output} (above 0: unlike the training images)'
                  if self.unknown_output else '\n  ' + NO_JUDGEMENT)
        return (f'{self.path}: {self.format}, made by {self.kind}\n'
                f'  input  {self.spec.describe()}\n  output {self.output} ({classes}){judged}')

    def _run_in_chunks(self, batch: Batch) -> np.ndarray:
        if not len(batch):
            return np.zeros((0, (self.num_classes or 0) + bool(self.unknown_output)), np.float32)
        if self.spec.scalar:
            return np.concatenate([self.run(item).reshape(1, -1) for item in batch])
        step = self.spec.batch or len(batch)
        results = []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            padding = step - len(chunk)
            if padding:  # A fixed batch size: fill up with copies, drop their scores.
                chunk = tf.concat([chunk, tf.repeat(chunk[-1:], padding, axis=0)], axis=0)
            results.append(self.run(chunk)[:step - padding])
        return np.concatenate(results)


def model_format(path: str) -> str:
    """SAVED_MODEL, TFLITE or ONNX (by name or content) or FROZEN_GRAPH; ToolError when it is
    none, with the path to name instead where one is near (a SavedModel's folder, TF Serving's
    version folder). A name that is not UTF-8 is refused: TensorFlow's loaders cannot open it."""
    if not places.is_utf8(path):
        raise ToolError(f'cannot read {path}: its name is not UTF-8, which TensorFlow cannot '
                        'open; rename it')
    if not tf.io.gfile.exists(path):
        raise ToolError(f'graph file not found: {path}')
    if tf.io.gfile.isdir(path):
        if tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
            return SAVED_MODEL
        versions = sorted((name.rstrip('/') for name in tf.io.gfile.listdir(path)
                           if name.rstrip('/').isdigit() and tf.io.gfile.exists(
                               os.path.join(path, name.rstrip('/'), 'saved_model.pb'))), key=int)
        hint = (f'; its version folder {versions[-1]} holds a SavedModel: name '
                f'{os.path.join(path, versions[-1])}' if versions else '')
        raise ToolError(f'not a TensorFlow graph: {path} (a directory without saved_model.pb'
                        f'{hint})')
    folder = os.path.dirname(path)
    if (os.path.basename(path) == 'saved_model.pb'
            and tf.io.gfile.isdir(os.path.join(folder, 'variables'))):
        raise ToolError(f'{path} is the graph of a SavedModel: name its folder '
                        f'{folder or os.curdir} instead')
    # Content first, then the name: a file says what it is whatever it is called, and a damaged
    # one (or a staged temporary, which ends like its target) is named by its extension.
    if tflite.is_tflite(path):
        return TFLITE
    if onnx_model.is_onnx(path) or path.lower().endswith('.onnx'):
        return ONNX
    if path.lower().endswith('.tflite'):
        return TFLITE
    return FROZEN_GRAPH


def load(path: str, overrides: Overrides = Overrides(),
         allow_unsafe_ops: bool = False) -> Classifier:
    """Any model file or folder -> Classifier; ToolError (one line) when it cannot be used."""
    loader = {SAVED_MODEL: _load_saved_model, TFLITE: _load_tflite, ONNX: _load_onnx,
              FROZEN_GRAPH: _load_frozen_graph}[model_format(path)]
    return loader(path, overrides, allow_unsafe_ops)


def unsafe_ops(path: str) -> List[str]:
    """The ops of a model file or folder that load would refuse, found without running anything."""
    found = model_format(path)
    if found == SAVED_MODEL:
        return safety.saved_model_unsafe_ops(_serving_signature(path)[0])
    if found == TFLITE:
        return safety.tflite_unsafe_ops(tflite.read(path).op_names)
    if found == ONNX:
        problem = onnx_model.read(path).problem
        return [problem] if problem else []
    return safety.unsafe_ops(graph_files.load_graph_def(path))


def _load_frozen_graph(path: str, overrides: Overrides, allow_unsafe_ops: bool) -> Classifier:
    graph_def = graph_files.load_graph_def(path)
    safety.refuse(path, safety.unsafe_ops(graph_def), allow_unsafe_ops)
    output = signature.find_output(graph_def, path, overrides.output_layer)
    try:
        wrapped = graphs.imported_graph(graph_def)
    except (ValueError, tf.errors.OpError) as e:
        raise ToolError(f'cannot load graph {path}: {error_summary(e)}') from None
    spec = signature.detect_input(graph_def, wrapped.graph, output, path, overrides.input_layer,
                                  overrides.mean, overrides.std, overrides.size)
    num_classes = _num_classes(signature.get_tensor(wrapped.graph, output, path).shape,
                               output, path)
    judged = _judgement_of(graph_def, overrides)
    function = graphs.graph_function(graph_def, [spec.tensor], [output, *judged], wrapped.graph)
    output_op = signature.output_op(graph_def, output)

    def run(batch: Batch) -> np.ndarray:
        return _with_judgement([t.numpy() for t in function(tf.convert_to_tensor(batch))])
    return Classifier(path, FROZEN_GRAPH, signature.generation(graph_def), spec, output,
                      num_classes, run, output_op == 'Sigmoid', output_op,
                      unknown_output=''.join(judged))


def _judgement_of(graph_def: tf.compat.v1.GraphDef, overrides: Overrides) -> List[str]:
    """[`unknown_score:0`] when a retrained graph carries the judgement and its own output is
    read (not one named by --output_layer), else []."""
    if overrides.output_layer or not judges(graph_def):
        return []
    return [f'{UNKNOWN_SCORE}:0']


def _with_judgement(outputs: List[np.ndarray]) -> np.ndarray:
    """Scores [N, classes] and, if given, unknown scores [N] as one [N, classes + 1] array."""
    if len(outputs) == 1:
        return outputs[0]
    scores, judged = outputs
    return np.concatenate([scores, judged.reshape(-1, 1).astype(scores.dtype)], axis=1)


def _load_saved_model(path: str, overrides: Overrides, allow_unsafe_ops: bool) -> Classifier:
    meta_graph, signature_def = _serving_signature(path)
    # Before loading: loading itself runs the init, main and restore ops.
    safety.refuse(path, safety.saved_model_unsafe_ops(meta_graph), allow_unsafe_ops)
    try:
        serving = tf.saved_model.load(path).signatures['serving_default']
    except Exception as e:  # noqa: BLE001  Damaged variables: OSError, OpError, IndexError ...
        raise ToolError(f'cannot load SavedModel {path}: {error_summary(e)}') from None
    _, inputs = serving.structured_input_signature
    if len(inputs) != 1:
        raise ToolError(f'serving_default of {path} takes {len(inputs)} inputs, not one image')
    (input_key, input_spec), = inputs.items()
    outputs = serving.structured_outputs
    ours = SAVED_MODEL_KEYS[1]
    output = _named(overrides, path, [input_key], list(outputs)) or (
        ours if ours in outputs else None)
    if output is None and len(outputs) == 1:
        output, = outputs
    if output not in outputs:
        raise ToolError(f'cannot tell the output of {path} among {", ".join(sorted(outputs))}:'
                        ' name it with --output_layer')
    spec = _spec_from_shape(input_key, input_spec.dtype, input_spec.shape, path, overrides,
                            'SavedModel image input (retrain --saved_model_dir, compat convert, '
                            'make_image_classifier)')
    made_by = _SAVED_MODEL_MAKERS.get((input_key, output), 'its serving_default signature')

    judged = [UNKNOWN_SCORE] if output == ours and UNKNOWN_SCORE in outputs else []

    def run(batch: Batch) -> np.ndarray:
        results = serving(**{input_key: tf.convert_to_tensor(batch)})
        return _with_judgement([results[key].numpy() for key in (output, *judged)])
    output_op = signature.output_op(meta_graph.graph_def, signature_def.outputs[output].name)
    return Classifier(path, SAVED_MODEL, made_by, spec, output,
                      _num_classes(outputs[output].shape, output, path), run,
                      output_op == 'Sigmoid', output_op, unknown_output=''.join(judged))


def _serving_signature(path: str):
    """The serving_default signature of the SavedModel in `path` (and its meta graph). An empty
    saved_model.pb parses as a SavedModel without graphs: it is as damaged as a truncated one."""
    graph = os.path.join(path, 'saved_model.pb')
    saved_model = saved_model_pb2.SavedModel()
    try:
        with tf.io.gfile.GFile(graph, 'rb') as f:
            saved_model.ParseFromString(f.read())
    except tf.errors.OpError as e:  # A folder in its place, no permission ...
        raise ToolError(f'cannot read {graph}: {fileio.failure_reason(e, graph)}') from None
    except (message.DecodeError, RuntimeWarning, ValueError):
        saved_model.Clear()
    if not saved_model.meta_graphs:
        raise ToolError(f'not a SavedModel: {path} (its saved_model.pb is damaged or truncated)')
    for meta_graph in saved_model.meta_graphs:
        if 'serving_default' in meta_graph.signature_def:
            return meta_graph, meta_graph.signature_def['serving_default']
    raise ToolError(f'SavedModel {path} has no serving_default signature')


def _load_tflite(path: str, overrides: Overrides, allow_unsafe_ops: bool) -> Classifier:
    model = tflite.read(path)
    safety.refuse(path, safety.tflite_unsafe_ops(model.op_names), allow_unsafe_ops)
    try:
        interpreter = tflite.interpreter(model)
    except (ValueError, RuntimeError) as e:
        raise ToolError(f'not a TensorFlow Lite model: {path} '
                        f'({error_summary(e)})') from None
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise ToolError(f'{path} takes {len(inputs)} inputs, not one image')
    entry = inputs[0]
    outputs = interpreter.get_output_details()
    named = _named(overrides, path, [entry['name']], [o['name'] for o in outputs])
    judged = [o for o in outputs if o['name'].startswith(UNKNOWN_SCORE)][:1]
    result = [o for o in outputs if o not in judged][0]
    if named:  # The output asked for, alone (as for frozen graphs: _judgement_of).
        result, judged = next(o for o in outputs if o['name'] == named), []
    centered = entry['name'].split(':')[0] in ('input', 'Mul')  # As Poets-era apps fed them.
    spec = _spec_from_shape(entry['name'], tf.as_dtype(entry['dtype']), entry['shape_signature'],
                            path, overrides,
                            'Poets-era TFLite input' if centered else 'TFLite image input',
                            signature.CLASSIC_CENTERED if centered else signature.UNIT)

    def run(batch: Batch) -> np.ndarray:
        batch = np.asarray(batch)
        if tuple(interpreter.get_input_details()[0]['shape']) != batch.shape:
            interpreter.resize_tensor_input(entry['index'], batch.shape)
            tflite.allocate(interpreter)
        interpreter.set_tensor(entry['index'], batch)
        interpreter.invoke()
        return _with_judgement([_dequantize(interpreter.get_tensor(o['index']), o)
                                for o in (result, *judged)])
    try:
        tflite.allocate(interpreter)
    except RuntimeError as e:  # Such as Select TF ops without the Flex delegate.
        raise ToolError(f'cannot run {path}: {error_summary(e)[:200]}') from None
    return Classifier(path, TFLITE, 'tf.lite', spec, result['name'],
                      _num_classes([d if d >= 0 else None for d in result['shape_signature']],
                                   result['name'], path), run,
                      model.output_op == 'LOGISTIC', model.output_op,
                      tflite.carried_labels(model),
                      unknown_output=''.join(o['name'] for o in judged))


def _load_onnx(path: str, overrides: Overrides, allow_unsafe_ops: bool) -> Classifier:
    """An ONNX classifier (onnx_model refuses any that could touch files, whatever
    `allow_unsafe_ops` says); its labels come from its metadata."""
    del allow_unsafe_ops  # No ONNX op it would allow runs without a custom-op library.
    model = onnx_model.read(path)
    session = onnx_model.session(model)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ToolError(f'{path} takes {len(inputs)} inputs, not one image')
    named = _named(overrides, path, [inputs[0].name], [o.name for o in session.get_outputs()])
    entry, result = inputs[0], session.get_outputs()[0]
    judged = [o.name for o in session.get_outputs()[1:] if o.name == UNKNOWN_SCORE]
    if named:
        result, judged = next(o for o in session.get_outputs() if o.name == named), []
    shape = [d if isinstance(d, int) else None for d in entry.shape]
    if len(shape) == 4 and shape[3] not in (None, 3):
        shown = str(shape).replace('None', 'N')
        raise ToolError(f'input {entry.name} of {path} is {shown}, not images [N, H, W, 3]')
    if entry.type not in _ONNX_TYPES:
        raise ToolError(f'input {entry.name} of {path} is a {entry.type}, not an image')
    spec = _spec_from_shape(entry.name, _ONNX_TYPES[entry.type], shape, path, overrides,
                            'ONNX image input (retrain --onnx_output_file, compat convert)')

    def run(batch: Batch) -> np.ndarray:
        return _with_judgement(session.run([result.name, *judged],
                                           {entry.name: np.asarray(batch)}))
    return Classifier(path, ONNX, model.model.producer_name or 'unknown', spec, result.name,
                      _num_classes([d if isinstance(d, int) else None for d in result.shape],
                                   result.name, path), run,
                      model.output_op == 'Sigmoid', model.output_op, model.labels,
                      unknown_output=''.join(judged))


def _named(overrides: Overrides, path: str, inputs: List[str],
           outputs: List[str]) -> Optional[str]:
    """The output --output_layer names among `outputs` (None without the flag); ToolError when
    it, or --input_layer, names none of the model's own (the flags only choose among them)."""
    def bare(name: str) -> str:
        return name[:-2] if name.endswith(':0') else name
    for what, given, names in (('input', overrides.input_layer, inputs),
                               ('output', overrides.output_layer, outputs)):
        if given and bare(given) not in map(bare, names):
            raise ToolError(f'no {what} {given} in {path}: its {what}s are {", ".join(names)}')
    return next((name for name in outputs if bare(name) == bare(overrides.output_layer)),
                None) if overrides.output_layer else None


def _num_classes(shape, output: str, path: str) -> Optional[int]:
    """The class count of an output of shape [N, classes] (None where unknown); ToolError for
    any other rank (an --output_layer naming an image or a scalar gives no scores to rank)."""
    shape = tf.TensorShape(shape)
    if shape.rank is None:
        return None
    if shape.rank != 2:
        shown = str(shape.as_list()).replace('None', 'N')
        raise ToolError(f'{output} of {path} is {shown}, not class scores [N, classes]: '
                        'name the scores with --output_layer')
    return shape[1]


def _dequantize(values: np.ndarray, details) -> np.ndarray:
    scale, zero_point = details.get('quantization', (0.0, 0))
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def _spec_from_shape(name: str, dtype: tf.DType, shape, path: str, overrides: Overrides,
                     reason: str, default=signature.UNIT) -> InputSpec:
    """InputSpec for a model that declares only its input's dtype and shape."""
    dims: List[Optional[int]] = [None if d is None or d < 0 else int(d) for d in list(shape)]
    if dtype == tf.string:
        return InputSpec(name, encoded=True, scalar=not dims, batch=dims[0] if dims else None,
                         reason='decoded by the model itself')
    if len(dims) != 4:
        raise ToolError(f'input {name} of {path} is not an image input (shape {dims})')
    size = (dims[1], dims[2]) if dims[1] and dims[2] else overrides.size
    if not size:
        raise ToolError(f'input {name} of {path} takes images of any size: give '
                        '--input_height and --input_width')
    size = signature.within_budget(tuple(size), f'input {name}', path)
    if dtype == tf.uint8:
        return InputSpec(name, size=size, batch=dims[0], dtype='uint8',
                         reason='quantized input: raw pixels')
    mean = default[0] if overrides.mean is None else overrides.mean
    std = default[1] if overrides.std is None else overrides.std
    expected = None
    if (overrides.mean, overrides.std) != (None, None):
        expected = None if signature.same_normalization((mean, std), default) else default
        reason = 'from --input_mean/--input_std'
    return InputSpec(name, size=tuple(size), batch=dims[0], mean=mean, std=std, reason=reason,
                     expected=expected)
