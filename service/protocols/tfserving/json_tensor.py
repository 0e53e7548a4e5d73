"""A :predict body read as TF Serving reads it (tensorflow_serving/util/json_tensor.cc ParseJson,
FillPredictRequestFromJson, AddValueToTensor, FillTensorProto, AddInstanceItem): the JSON document,
then one tensor per input, in row form ({"instances": [...]}) or columnar form ({"inputs": ...}), each
value checked against the signature's dtype, with TF Serving's messages. No HTTP, no TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.protocols import jsonread
from service.protocols.tfserving.error_codes import TFServingError, invalid
from service.protocols.tfserving.signatures import SERVING_DEFAULT, STRING, Signature, TensorSpec, dtype_name


@dataclass
class PredictRequest:
    """A parsed :predict body. inputs: alias -> np.ndarray (DT_STRING as an object array of bytes), or
    for an images input sent as {"b64": ...}, the list of encoded images (one per example)."""

    format: str  # "row" (instances -> predictions) or "columnar" (inputs -> outputs)
    inputs: dict[str, np.ndarray | list[bytes]]
    signature_name: str = SERVING_DEFAULT
    images: frozenset[str] = field(default_factory=frozenset)  # names whose value is list[bytes]

    @property
    def batch_size(self) -> int | None:
        """Examples in the request: row form's instance count, else the inputs' common first dim."""
        sizes = {len(v) if isinstance(v, list) else (v.shape[0] if v.ndim else None)
                 for v in self.inputs.values()}
        return sizes.pop() if len(sizes) == 1 else None


def parse_json(body: bytes | str) -> dict[str, Any]:
    """The request body as TF Serving reads it: NaN/Infinity/-Infinity allowed, nothing after the
    document looked at (rapidjson kParseStopWhenDoneFlag), the top level an object."""
    raw = None
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise invalid(f"JSON Parse error: Invalid encoding in string. at offset: {error.start}") from None
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    text = body.lstrip(" \t\n\r")
    if not text:
        raise invalid(f"JSON Parse error: The document is empty. at offset: {len(body)}")
    try:  # Pinpoint's bounded reader (depth, number length, valid text), with TF Serving's NaN and Infinity
        document, _ = jsonread.loads(text, nonfinite=True, whole=False, raw=raw)
    except json.JSONDecodeError as error:
        message = "Invalid value." if error.msg == "Expecting value" else error.msg
        raise invalid(f"JSON Parse error: {message} at offset: {error.pos + len(body) - len(text)}") from None
    except jsonread.Refused as error:
        raise invalid(f"JSON Parse error: {error.message}") from None
    if not isinstance(document, dict):
        raise invalid(f"JSON Value: {debug_text(document)} Is not object")
    return document


def debug_text(value: Any) -> str:
    """JsonValueToDebugString: the value as JSON, cut at 256 bytes."""
    try:
        text = json.dumps(value, separators=(", ", ": "), default=repr)
    except (ValueError, RecursionError):
        text = repr(value)
    return text[:256]


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


SIGNATURE_MISSING = 'Serving signature name: "{name}" not found in signature def'


def signature_name(document: Mapping[str, Any]) -> str:
    """FillSignature: the body's signature_name ("" when absent: the served one)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {debug_text(document)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    return name


def requested_signature(document: Mapping[str, Any], missing: str, served: str = SERVING_DEFAULT) -> str:
    """FillSignature plus the look-up: `served` is the signature looked up (a request for another one,
    or "" for the served default, was resolved to it by the caller: service/protocols/named_tensors.py)."""
    name = signature_name(document)
    if name not in ("", SERVING_DEFAULT, served):
        raise invalid(missing.format(name=name))
    return served


# Tensors from JSON (json_tensor.cc AddValueToTensor, FillTensorProto, AddInstanceItem)

def is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def b64decode(value: Any) -> bytes:
    if not is_b64(value):
        raise invalid(f"JSON Value: {debug_text(value)} not formatted correctly for base64 data")
    text = value["b64"]
    try:  # absl::Base64Unescape: standard alphabet, padding optional, whitespace skipped
        text = "".join(text.split())
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Unable to base64 decode") from None


def _dense_shape(value: Any) -> tuple[int, ...]:
    """GetDenseTensorShape: the sizes along the first element of every level."""
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(dims)


_INT_RANGE = {name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
              for name in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")}


def _type_error(value: Any, dtype: np.dtype) -> TFServingError:
    return invalid(f"JSON Value: {debug_text(value)} Type: {json_type(value)} "
                   f"is not of expected type: {dtype_name(dtype)}")


def _scalar(value: Any, dtype: np.dtype) -> Any:
    """AddValueToTensor: one leaf, checked against the input's dtype."""
    if dtype == STRING:
        if isinstance(value, dict):
            return b64decode(value)
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if isinstance(value, dict):
        raise _type_error(value, dtype)
    kind = dtype.kind
    if kind == "f" and dtype.name in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(value, dtype)
        try:
            return float(value)
        except OverflowError:
            raise invalid("JSON Parse error: Number too big to be stored in double.") from None
    if kind in "iu" and dtype.name != "uint16":
        low, high = _INT_RANGE[dtype.name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _type_error(value, dtype)
        return value
    if kind == "b":
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise TFServingError(f"Conversion of JSON Value: {debug_text(value)} to type: {dtype_name(dtype)}",
                         "UNIMPLEMENTED")


def _fill(value: Any, level: int, dims: tuple[int, ...], dtype: np.dtype, out: list) -> None:
    """FillTensorProto: every leaf at the tensor's rank, every list of the size the first one had."""
    rank = len(dims)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(f"JSON Value: {debug_text(value)} found at incorrect level: {level + 1} "
                          f"in the JSON DOM. Expected at level: {rank}")
        out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != dims[level]:
        raise invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                      f"expected size: {dims[level]}")
    for item in value:
        _fill(item, level + 1, dims, dtype, out)


def _array(values: list, dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype == STRING:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(dims)
    with np.errstate(over="ignore"):  # JSON doubles past float32's range become +-inf, as in TF
        return np.array(values, dtype=dtype).reshape(dims)


def _fast_tensor(value: Any, dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The common case in C loops; None when anything is off (the exact path then says what)."""
    try:
        objects = np.array(value, dtype=object)
    except (ValueError, TypeError, RecursionError):
        return None
    if objects.shape != dims:
        return None
    flat = objects.ravel()
    kinds = set(map(type, flat))
    try:
        if dtype == STRING:
            if not kinds <= {str, dict}:
                return None
            out = np.empty(flat.shape, dtype=object)
            for i, item in enumerate(flat):
                out[i] = item.encode("utf-8") if isinstance(item, str) else b64decode(item)
            return out.reshape(dims)
        if dtype.name in ("float32", "float64"):
            if not kinds <= {int, float}:
                return None
            with np.errstate(over="ignore"):
                return objects.astype(np.float64).astype(dtype)
        if dtype.kind in "iu" and dtype.name in _INT_RANGE and dtype.name != "uint16":
            if not kinds <= {int}:
                return None
            low, high = _INT_RANGE[dtype.name]
            if flat.size and not (low <= min(flat) and max(flat) <= high):
                return None
            return objects.astype(dtype)
        if dtype.kind == "b":
            return objects.astype(bool) if kinds <= {bool} else None
    except (OverflowError, TFServingError):
        return None
    return None


def _tensor(value: Any, dtype: np.dtype) -> np.ndarray:
    """One JSON value as a dense tensor of `dtype`, with TF Serving's checks and messages."""
    dims = _dense_shape(value)
    array = _fast_tensor(value, dims, dtype)
    if array is not None:
        return array
    out: list = []
    try:
        _fill(value, 0, dims, dtype, out)
    except RecursionError:
        raise invalid("JSON Value is nested too deeply") from None
    return _array(out, dims, dtype)


def _shape_text(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def _status_text(error: TFServingError) -> str:
    """absl::Status::ToString(), as TF Serving nests one error's text in another."""
    return f"{error.code}: {error.message}"


class _Column:
    """AddInstanceItem's bookkeeping for one named input across the instances."""

    def __init__(self, spec: TensorSpec):
        self.spec = spec
        self.items: list[np.ndarray] = []
        self.images: list[bytes] | None = None

    def add(self, value: Any) -> None:
        spec = self.spec
        if spec.images and spec.dtype != STRING and (self.images is not None or (
                not self.items and is_b64(value))):
            if not is_b64(value):
                raise invalid(f"JSON Value: {debug_text(value)} is not an image: the first instance was "
                              "{\"b64\": ...}, so every instance must be")
            self.images = (self.images or []) + [b64decode(value)]
            return
        tensor = _tensor(value, spec.dtype)
        if self.items:
            first = self.items[0]
            if first.size != tensor.size:
                raise invalid(f"Expecting tensor size: {first.size} but got: {tensor.size}")
            if first.shape != tensor.shape:
                raise invalid(f"Expecting shape {_shape_text(first.shape)} but got: "
                              f"{_shape_text(tensor.shape)}")
        self.items.append(tensor)

    def value(self) -> np.ndarray | list[bytes]:
        if self.images is not None:
            return self.images
        return np.stack(self.items) if self.items else np.zeros((0,), self.spec.dtype)


def _row_fast(instances: list, signature: Signature, objects: bool) -> dict[str, np.ndarray] | None:
    """Every input's column in one conversion, when the instances are regular."""
    specs = signature.inputs
    if any(spec.images and spec.dtype != STRING for spec in specs):
        return None
    if objects:
        names = {spec.name for spec in specs}
        if not all(isinstance(e, dict) and not is_b64(e) and e.keys() == names for e in instances):
            return None
        columns = {spec.name: [e[spec.name] for e in instances] for spec in specs}
    else:
        columns = {specs[0].name: instances}
    result = {}
    for spec in specs:
        column = columns[spec.name]
        dims = (len(column),) + _dense_shape(column[0])
        array = _fast_tensor(column, dims, spec.dtype)
        if array is None:
            return None
        result[spec.name] = array
    return result


def _from_instances(instances: Any, signature: Signature, document: Mapping[str, Any]):
    """FillTensorMapFromInstancesList."""
    if not isinstance(instances, list):
        raise invalid(f"JSON Value: {debug_text(document)} Expecting 'instances' to be an list/array")
    if not instances:
        raise invalid(f"JSON Value: {debug_text(document)} No values in 'instances' array")
    specs = signature.inputs
    if not isinstance(instances[0], dict) and len(specs) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")
    objects = isinstance(instances[0], dict) and not is_b64(instances[0])
    if not objects and len(specs) > 1:  # a {"b64": ...} first instance: still not named inputs
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")
    fast = _row_fast(instances, signature, objects)
    if fast is not None:
        return fast, frozenset()
    columns = {spec.name: _Column(spec) for spec in specs}
    names = sorted(columns)
    for index, element in enumerate(instances):
        element_is_object = isinstance(element, dict) and not is_b64(element)
        if objects:
            if not element_is_object:
                raise invalid(f"Expecting object but got list at item {index} of input list")
            for key, value in element.items():
                try:
                    if key not in columns:
                        raise invalid(f"JSON object: does not have named input: {key}")
                    columns[key].add(value)
                except TFServingError as error:
                    raise invalid(f"Failed to process element: {index} key: {key} of 'instances' "
                                  f"list. Error: {_status_text(error)}") from None
            if set(element) != set(names):
                raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                              f"{debug_text(element)} keys must be equal to: {','.join(names)}")
        else:
            if element_is_object:
                raise invalid(f"Expecting value/list but got object at item {index} of input list")
            try:
                columns[specs[0].name].add(element)
            except TFServingError as error:
                raise invalid(f"Failed to process element: {index} of 'instances' list. "
                              f"Error: {_status_text(error)}") from None
    values = {name: column.value() for name, column in columns.items()}
    images = frozenset(name for name, column in columns.items() if column.images is not None)
    return values, images


def _columnar_item(value: Any, spec: TensorSpec):
    if spec.images and spec.dtype != STRING:
        if is_b64(value):
            return [b64decode(value)]
        if isinstance(value, list) and value and all(is_b64(v) for v in value):
            return [b64decode(v) for v in value]
    return _tensor(value, spec.dtype)


def _from_inputs(inputs: Any, signature: Signature):
    """FillTensorMapFromInputsMap."""
    specs = signature.inputs
    if not isinstance(inputs, dict) or is_b64(inputs):
        if len(specs) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                          "input tensors required as per tensorinfo_map")
        values = {specs[0].name: _columnar_item(inputs, specs[0])}
    else:
        values = {}
        for spec in specs:
            if spec.name not in inputs:
                raise invalid(f"Missing named input: {spec.name} in 'inputs' object.")
            values[spec.name] = _columnar_item(inputs[spec.name], spec)
    images = frozenset(name for name, value in values.items() if isinstance(value, list))
    return values, images


def _check_signature(values: Mapping[str, Any], signature: Signature, columnar: bool) -> None:
    """Beyond the codec (TF leaves these to the graph run): shapes against the signature and, for
    columnar requests, one batch size for all inputs whose first dimension is the batch."""
    batches = {}
    for spec in signature.inputs:
        value = values[spec.name]
        if isinstance(value, list):
            batches[spec.name] = len(value)
            continue
        if spec.shape is not None:
            fits = value.ndim == len(spec.shape) and all(
                want < 0 or want == got for want, got in zip(spec.shape, value.shape))
            if not fits:
                raise invalid(f"Input tensor alias: {spec.name} has shape {_shape_text(value.shape)} "
                              f"but the signature's shape is {_shape_text(spec.shape)}")
            if spec.shape and spec.shape[0] < 0:
                batches[spec.name] = value.shape[0]
    if columnar and len(set(batches.values())) > 1:
        sizes = ", ".join(f"{name}: {size}" for name, size in sorted(batches.items()))
        raise invalid(f"Inputs have different batch sizes ({sizes}); send one size for all")


def parse_predict(document: Mapping[str, Any], signature: Signature) -> PredictRequest:
    """FillPredictRequestFromJson: a :predict body (already parsed, see parse_json) for `signature`.

    Row form {"instances": [...]}: one entry per example; with one input each entry is that input's
    value, with several each entry is an object of all of them. Columnar form {"inputs": ...}: the
    single input's tensor, or an object of named tensors. {"b64": "..."} is bytes anywhere a
    DT_STRING value goes (and a whole example of an `images` input). Raises TFServingError.
    """
    if not isinstance(document, Mapping):
        raise invalid(f"JSON Value: {debug_text(document)} Is not object")
    signature_name = requested_signature(document, SIGNATURE_MISSING, signature.name)
    if not signature.inputs:
        raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid(f"JSON Value: {debug_text(document)} Not formatted correctly expecting only one "
                      "of 'inputs' or 'instances' keys to exist ")
    if has_instances:
        values, images = _from_instances(document["instances"], signature, document)
        form = "row"
    elif has_inputs:
        values, images = _from_inputs(document["inputs"], signature)
        form = "columnar"
    else:
        raise invalid("Missing 'inputs' or 'instances' key")
    _check_signature(values, signature, form == "columnar")
    return PredictRequest(form, values, signature_name, images)
