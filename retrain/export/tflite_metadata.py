"""TensorFlow Lite model metadata: what MediaPipe Tasks needs to run our .tflite files as they are.

MediaPipe's ImageClassifier (Android, iOS, web, Python) reads from the model itself how to turn
pixels into the input tensor (normalization, colour space) and what the scores mean (a labels
file). That is the "TFLITE_METADATA" entry of the model's `metadata` table: a buffer holding a
`ModelMetadata` flatbuffer (metadata_schema.fbs, file identifier "M001"); associated files such
as the labels are stored uncompressed in a zip archive appended to the flatbuffer.

Why this module writes the few tables itself: tflite-support's writer is abandoned and pins
protobuf < 4 (TensorFlow 2.21 needs newer); MediaPipe's writer does not import from its pip
wheel, and a product that writes a .tflite must not need MediaPipe anyway. The schema is
published and stable, `flatbuffers` is a TensorFlow dependency, and TensorFlow ships the model
schema, so a small builder for the fields we set is the sound way. Every field used here exists
since metadata parser version 1.0.0.
"""
import dataclasses
import io
import zipfile
from typing import List, Optional, Sequence, Tuple

import flatbuffers
import numpy as np
from flatbuffers import table

from retrain.common.graph_names import UNKNOWN_SCORE
from retrain.common.tf_internals import tflite_schema as schema

METADATA_NAME = 'TFLITE_METADATA'
LABELS_FILE = 'labels.txt'
_IDENTIFIER = b'M001'
_MODEL_IDENTIFIER = b'TFL3'
_PARSER_VERSION = '1.0.0'
# Enum and union values of metadata_schema.fbs.
_TENSOR_AXIS_LABELS = 2
_RGB = 1
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2
_NORMALIZATION_OPTIONS = 1
_COLOR_SPACES = {0: 'unknown', 1: 'RGB', 2: 'grayscale'}
UNKNOWN_DESCRIPTION = ('How unlike the training images the image is: above 0, call it unknown '
                       '(the operating point chosen in training).')


@dataclasses.dataclass(frozen=True)
class Metadata:
    """What a .tflite file's metadata says, as far as label_image and inspect report it."""
    name: str
    description: str
    color_space: str
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    labels: Tuple[str, ...]

    def describe(self) -> str:
        normalization = (f'(pixel - {_number(self.mean)}) / {_number(self.std)}'
                         if self.mean else 'raw pixels')
        labels = (f'{len(self.labels)} labels in {LABELS_FILE}' if self.labels
                  else 'no labels file')
        return (f'metadata: {self.name!r}: {self.description}\n'
                f'  input  {self.color_space} image, {normalization}\n'
                f'  output {labels}')


def add_metadata(model: bytes, name: str, description: str,
                 labels: Optional[Sequence[str]] = None,
                 value_range: Tuple[float, float] = (0.0, 1.0), judged: bool = False) -> bytes:
    """The .tflite `model` with image-classifier metadata (and `labels` zipped in, if given).

    `value_range` is what the float input expects for pixels 0 and 255; MediaPipe maps pixels
    with (pixel - mean) / std. A uint8 input takes raw pixels and gets no normalization.
    """
    parsed = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    subgraph = parsed.subgraphs[0]
    input_type = subgraph.tensors[subgraph.inputs[0]].type
    normalization = None
    if input_type == schema.TensorType.FLOAT32:
        low, high = value_range
        std = 255.0 / (high - low)
        normalization = (0.0 - low * std, std)  # 0.0 - 0.0: no "-0" in reports.
    metadata = _build_metadata(name, description, normalization, value_range, labels is not None,
                               judged)
    parsed.buffers = [_AlignedBuffer(data=b.data, offset=b.offset, size=b.size)
                      for b in parsed.buffers]
    buffer = _AlignedBuffer(data=np.frombuffer(metadata, np.uint8))
    earlier = [m for m in parsed.metadata or [] if m.name.decode('utf-8') == METADATA_NAME]
    if earlier:  # Metadata added again replaces the old in place.
        parsed.buffers[earlier[0].buffer] = buffer
    else:
        parsed.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(parsed.buffers) - 1
        parsed.metadata = (parsed.metadata or []) + [entry]
    builder = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    builder.Finish(parsed.Pack(builder), file_identifier=_MODEL_IDENTIFIER)
    output = io.BytesIO(bytes(builder.Output()))
    if labels is not None:
        output.seek(0, io.SEEK_END)
        # Appended as the format wants: the flatbuffer first, then the archive (stored, so that
        # the runtime can read the file in place); zip offsets count from the start of the file.
        with zipfile.ZipFile(output, 'a', zipfile.ZIP_STORED) as archive:
            archive.writestr(LABELS_FILE, ''.join(label + '\n' for label in labels))
    return output.getvalue()


def read_metadata(model: bytes) -> Optional[Metadata]:
    """The metadata of a .tflite file's bytes; None if it has none."""
    parsed = schema.Model.GetRootAs(model, 0)
    for i in range(parsed.MetadataLength()):
        entry = parsed.Metadata(i)
        if entry.Name().decode('utf-8') == METADATA_NAME:
            data = parsed.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            return _parse_metadata(data, _zipped_labels(model))
    return None


class _AlignedBuffer(schema.BufferT):
    """A buffer whose data starts 16-byte aligned, as the model schema asks of it
    (`force_align: 16`): TensorFlow's generated packer aligns it to 1 byte only."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        if self.data is None:
            return super().Pack(builder)
        data = np.asarray(self.data, np.uint8).tobytes()
        builder.StartVector(1, len(data), 16)
        builder.head -= len(data)
        builder.Bytes[builder.head:builder.head + len(data)] = data
        vector = builder.EndVector()
        schema.BufferStart(builder)
        schema.BufferAddData(builder, vector)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _zipped_labels(model: bytes) -> Tuple[str, ...]:
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            return tuple(archive.read(LABELS_FILE).decode('utf-8').splitlines())
    except (zipfile.BadZipFile, KeyError):
        return ()


def _number(values: Sequence[float]) -> str:
    return ', '.join(f'{v:g}' for v in values)


class _Writer:
    """Tables of the metadata schema, built bottom-up as flatbuffers require."""

    def __init__(self):
        self.builder = flatbuffers.Builder(1024)

    def table(self, fields: Sequence[Tuple[int, str, object]]) -> int:
        """fields: (slot, kind, value) with kind 'offset', 'byte' or 'uint8'; None is skipped."""
        fields = [f for f in fields if f[2] is not None]
        self.builder.StartObject(max((slot for slot, _, _ in fields), default=-1) + 1)
        for slot, kind, value in fields:
            if kind == 'offset':
                self.builder.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == 'byte':
                self.builder.PrependInt8Slot(slot, value, 0)
            else:
                self.builder.PrependUint8Slot(slot, value, 0)
        return self.builder.EndObject()

    def string(self, text: Optional[str]) -> Optional[int]:
        return None if text is None else self.builder.CreateString(text)

    def tables(self, offsets: Sequence[int]) -> int:
        self.builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            self.builder.PrependUOffsetTRelative(offset)
        return self.builder.EndVector()

    def floats(self, values: Sequence[float]) -> int:
        self.builder.StartVector(4, len(values), 4)
        for value in reversed(values):
            self.builder.PrependFloat32(value)
        return self.builder.EndVector()

    def stats(self, low: float, high: float) -> int:
        return self.table([(0, 'offset', self.floats([high])), (1, 'offset', self.floats([low]))])


def _build_metadata(name: str, description: str, normalization: Optional[Tuple[float, float]],
                    value_range: Tuple[float, float], with_labels: bool,
                    judged: bool = False) -> bytes:
    w = _Writer()
    # Input: an RGB image, normalized as the model expects.
    image_properties = w.table([(0, 'byte', _RGB)])
    image_content = w.table([(0, 'uint8', _IMAGE_PROPERTIES), (1, 'offset', image_properties)])
    units = None
    if normalization:
        options = w.table([(0, 'offset', w.floats([normalization[0]])),
                           (1, 'offset', w.floats([normalization[1]]))])
        units = w.tables([w.table([(0, 'uint8', _NORMALIZATION_OPTIONS),
                                   (1, 'offset', options)])])
    input_stats = w.stats(*value_range) if normalization else w.stats(0, 255)
    image = w.table([(0, 'offset', w.string('image')),
                     (1, 'offset', w.string('The image to classify, RGB.')),
                     (3, 'offset', image_content), (4, 'offset', units),
                     (5, 'offset', input_stats)])
    # Output: one probability per class; the labels name them in order.
    files = None
    if with_labels:
        labels_file = w.table([(0, 'offset', w.string(LABELS_FILE)),
                               (1, 'offset', w.string('The class names, one per line.')),
                               (2, 'byte', _TENSOR_AXIS_LABELS)])
        files = w.tables([labels_file])
    feature_content = w.table([(0, 'uint8', _FEATURE_PROPERTIES),
                               (1, 'offset', w.table([]))])
    probability = w.table([(0, 'offset', w.string('probability')),
                           (1, 'offset', w.string('The probability of each class.')),
                           (3, 'offset', feature_content), (5, 'offset', w.stats(0.0, 1.0)),
                           (6, 'offset', files)])
    outputs = [probability]
    if judged:  # The second output: retrain.train.unknown's score.
        outputs.append(w.table([
            (0, 'offset', w.string(UNKNOWN_SCORE)),
            (1, 'offset', w.string(UNKNOWN_DESCRIPTION)),
            (3, 'offset', w.table([(0, 'uint8', _FEATURE_PROPERTIES),
                                   (1, 'offset', w.table([]))]))]))
    subgraph = w.table([(2, 'offset', w.tables([image])),
                        (3, 'offset', w.tables(outputs))])
    root = w.table([(0, 'offset', w.string(name)), (1, 'offset', w.string(description)),
                    (3, 'offset', w.tables([subgraph])),
                    (7, 'offset', w.string(_PARSER_VERSION))])
    w.builder.Finish(root, file_identifier=_IDENTIFIER)
    return bytes(w.builder.Output())


class _Reader:
    """Read access to one table of a metadata flatbuffer, by field slot."""

    def __init__(self, buffer: bytes, position: int):
        self.table = table.Table(buffer, position)

    def _offset(self, slot: int) -> int:
        return self.table.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str:
        offset = self._offset(slot)
        return self.table.String(offset + self.table.Pos).decode('utf-8') if offset else ''

    def scalar(self, slot: int, kind) -> int:
        offset = self._offset(slot)
        return self.table.Get(kind, offset + self.table.Pos) if offset else 0

    def child(self, slot: int) -> Optional['_Reader']:
        offset = self._offset(slot)
        if not offset:
            return None
        return _Reader(self.table.Bytes, self.table.Indirect(offset + self.table.Pos))

    def children(self, slot: int) -> List['_Reader']:
        offset = self._offset(slot)
        if not offset:
            return []
        start = self.table.Vector(offset)
        return [_Reader(self.table.Bytes, self.table.Indirect(start + 4 * i))
                for i in range(self.table.VectorLen(offset))]

    def floats(self, slot: int) -> Tuple[float, ...]:
        offset = self._offset(slot)
        if not offset:
            return ()
        start = self.table.Vector(offset)
        return tuple(self.table.Get(flatbuffers.number_types.Float32Flags, start + 4 * i)
                     for i in range(self.table.VectorLen(offset)))


def _parse_metadata(data: bytes, labels: Tuple[str, ...]) -> Metadata:
    root = _Reader(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
    subgraphs = root.children(3)
    inputs = subgraphs[0].children(2) if subgraphs else []
    color_space, mean, std = 'unknown', (), ()
    if inputs:
        content = inputs[0].child(3)
        if content and content.scalar(0, flatbuffers.number_types.Uint8Flags) == \
                _IMAGE_PROPERTIES:
            color_space = _COLOR_SPACES.get(
                content.child(1).scalar(0, flatbuffers.number_types.Int8Flags), 'unknown')
        for unit in inputs[0].children(4):
            if unit.scalar(0, flatbuffers.number_types.Uint8Flags) == _NORMALIZATION_OPTIONS:
                mean, std = unit.child(1).floats(0), unit.child(1).floats(1)
    return Metadata(root.string(0), root.string(1), color_space, mean, std, labels)
