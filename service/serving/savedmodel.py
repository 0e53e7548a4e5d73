"""A SavedModel's signatures, read from its saved_model.pb without TensorFlow.

The model repository (service/serving/repository.py) describes every version before anything is loaded, and
API workers never import TensorFlow, so the few fields Pinpoint needs (each MetaGraphDef's
signature_def map: inputs and outputs as TensorInfo name, dtype and shape, and the method name) are
read here straight from the protobuf wire format. Field numbers are those of TensorFlow's
saved_model.proto, meta_graph.proto and tensor_shape.proto.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"
SERVING_DEFAULT = "serving_default"

# TensorFlow's DataType enum -> numpy dtype names (DT_STRING: "object").
DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "object",
          9: "int64", 10: "bool", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}


class NotASavedModel(ValueError):
    """saved_model.pb that cannot be read as a SavedModel."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    key: str  # the alias clients use (the signature map's key)
    name: str  # the graph tensor ("serving_default_x:0")
    dtype: str  # a numpy dtype name; "object" for DT_STRING; "" when unknown
    shape: tuple[int, ...] | None  # -1 for an unknown dim; None for an unknown rank


@dataclasses.dataclass(frozen=True)
class SignatureInfo:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    method_name: str


def read_signatures(directory: Path) -> dict[str, SignatureInfo]:
    """Every signature of the SavedModel in `directory` (its serving MetaGraphDef's, or the first's)."""
    path = Path(directory) / SAVED_MODEL_FILE
    try:
        data = path.read_bytes()
    except OSError as error:
        raise NotASavedModel(f"{path}: {error}") from None
    try:
        signatures: dict[str, SignatureInfo] = {}
        for number, value in _fields(data):
            if number == 2 and not signatures:  # SavedModel.meta_graphs: the first one holds what is served
                signatures = _meta_graph(value)
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise NotASavedModel(f"{path}: not a SavedModel ({error})") from None
    return signatures


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def _fields(data: bytes):
    """(field number, value) pairs of one message: ints for varints, bytes for length-delimited."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated field")
            value, at = data[at:at + length], at + length
        elif wire == 1:
            value, at = data[at:at + 8], at + 8
        elif wire == 5:
            value, at = data[at:at + 4], at + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, value = "", b""
    for number, field in _fields(data):
        if number == 1:
            key = field.decode()
        elif number == 2:
            value = field
    return key, value


def _meta_graph(data: bytes) -> dict[str, SignatureInfo]:
    signatures = {}
    for number, value in _fields(data):
        if number == 5:  # MetaGraphDef.signature_def
            key, body = _map_entry(value)
            signatures[key] = _signature(body)
    return signatures


def _signature(data: bytes) -> SignatureInfo:
    inputs, outputs, method = [], [], ""
    for number, value in _fields(data):
        if number in (1, 2):
            key, body = _map_entry(value)
            (inputs if number == 1 else outputs).append(_tensor_info(key, body))
        elif number == 3:
            method = value.decode()
    # TF Serving lists a signature's tensors by alias (a proto map, printed sorted).
    return SignatureInfo(tuple(sorted(inputs, key=lambda t: t.key)),
                         tuple(sorted(outputs, key=lambda t: t.key)), method)


def _tensor_info(key: str, data: bytes) -> TensorInfo:
    name, dtype, shape = "", "", None
    for number, value in _fields(data):
        if number == 1:
            name = value.decode()
        elif number == 2:
            dtype = DTYPES.get(value, "")
        elif number == 3:
            shape = _shape(value)
    return TensorInfo(key, name, dtype, shape)


def _shape(data: bytes) -> tuple[int, ...] | None:
    dims, unknown_rank = [], False
    for number, value in _fields(data):
        if number == 2:  # TensorShapeProto.dim
            size = 0
            for dim_number, dim_value in _fields(value):
                if dim_number == 1:
                    size = _signed(dim_value)
            dims.append(size)
        elif number == 3:
            unknown_rank = bool(value)
    return None if unknown_rank else tuple(dims)


FROZEN_INPUT, FROZEN_OUTPUT = "input:0", "probs:0"  # the tensors of a signature frozen for tf2onnx


def frozen_view(spec):
    """The spec of a SavedModel version as its signature frozen into a GraphDef describes it (tensors
    input:0 -> probs:0, as `pinpoint convert` names them): what the frozen-graph conversion works on."""
    return dataclasses.replace(spec, input=dataclasses.replace(spec.input, tensor=FROZEN_INPUT),
                               output_tensor=FROZEN_OUTPUT, signatures=(), signature_name="")


def identity(spec) -> bytes:
    """What names a SavedModel version's conversion in the ONNX cache: a hash of its saved_model.pb and
    variables/ files and the signature and tensors served (its frozen graph's bytes differ between freezes)."""
    digest = hashlib.sha256(f"savedmodel\0{spec.signature_name}\0{spec.input.tensor}\0{spec.output_tensor}".encode())
    directory = Path(spec.directory)
    for path in [directory / SAVED_MODEL_FILE, *sorted((directory / "variables").glob("*"))]:
        if path.is_file():
            digest.update(f"\0{path.name}\0".encode())
            with path.open("rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.digest()
