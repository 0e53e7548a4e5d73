"""TensorFlow Serving's REST JSON, as a pure codec: no HTTP, no TensorFlow.

Ported from TF Serving's own code (github.com/tensorflow/serving), which wins where its
g3doc/api_rest.md differs:
- tensorflow_serving/util/json_tensor.cc: FillPredictRequestFromJson, MakeJsonFromTensors,
  FillClassificationRequestFromJson, MakeJsonFromClassificationResult, MakeJsonFromStatus,
  WriteDecimal (how floats are printed);
- tensorflow_serving/model_servers/http_rest_api_util.cc: the route regexes, ParseModelInfo,
  FillModelSpecWithNameVersionAndLabel, ToJsonString (protobuf JSON options of status and metadata);
- tensorflow_serving/model_servers/http_server.cc: ToHTTPStatusCode (error code -> HTTP status);
- tensorflow_serving/model_servers/get_model_status_impl.cc, servables/tensorflow/
  get_model_metadata_impl.cc and testdata/*_metadata.json: the status and metadata shapes.

The HTTP layer reads the body (`parse_json`), routes (`parse_model_path`), calls `parse_predict` /
`parse_classify`, runs the model, answers with `render_predict` / `render_classify` /
`status_document` / `metadata_document`, and turns a `TFServingError` into `error.status` and
`error_body(error.message)`. `dumps` writes a document with TF Serving's exact number text;
plain `json.dumps` gives the same values.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from service.http.api import jsonread

SERVING_DEFAULT = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
BYTES_SUFFIX = "_bytes"  # outputs named so are written as {"b64": ...} (json_tensor.cc)

# ---------------------------------------------------------------------------------------------
# Errors

# http_server.cc ToHTTPStatusCode
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# Pinpoint's machine codes (service/errors.py) -> (TF error code, HTTP status). Statuses stay those of
# docs/api.md; the TF code is what a status document or a log would name.
FROM_PINPOINT = {
    "bad_request": ("INVALID_ARGUMENT", 400),
    "invalid_image": ("INVALID_ARGUMENT", 400),
    "point_out_of_bounds": ("INVALID_ARGUMENT", 400),
    "unsupported_media_type": ("INVALID_ARGUMENT", 415),
    "payload_too_large": ("INVALID_ARGUMENT", 413),
    "image_too_large": ("INVALID_ARGUMENT", 413),
    "method_not_allowed": ("INVALID_ARGUMENT", 405),
    "unauthorized": ("UNAUTHENTICATED", 401),
    "path_forbidden": ("PERMISSION_DENIED", 403),
    "forbidden": ("PERMISSION_DENIED", 403),
    "not_found": ("NOT_FOUND", 404),
    "rate_limited": ("RESOURCE_EXHAUSTED", 429),
    "overloaded": ("UNAVAILABLE", 503),
    "model_unavailable": ("UNAVAILABLE", 503),
    "timeout": ("DEADLINE_EXCEEDED", 504),
    "internal_error": ("INTERNAL", 500),
}


class TFServingError(Exception):
    """An error on a TF Serving route: TF's error code, its HTTP status, and the message for {"error": ...}."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT", *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status if status is not None else HTTP_STATUS.get(code, 500)
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return error_body(self.message)

    @classmethod
    def from_pinpoint(cls, error: Any) -> "TFServingError":
        """The same failure for a PinpointError (anything with .code, .message, .retry_after)."""
        code, status = FROM_PINPOINT.get(getattr(error, "code", ""), ("INVALID_ARGUMENT", 400))
        return cls(getattr(error, "message", str(error)), code, status=status,
                   retry_after=getattr(error, "retry_after", None))


def error_body(message: str) -> dict[str, str]:
    """MakeJsonFromStatus: the status message alone, under "error"."""
    return {"error": message}


def invalid(message: str) -> TFServingError:
    return TFServingError(message, "INVALID_ARGUMENT")


# TF Serving's messages for lookups the HTTP layer does (server_core.cc, basic_manager.cc,
# get_model_status_impl.cc).
def servable_not_found(name: str, version: int | None = None) -> TFServingError:
    request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return TFServingError(f"Servable not found for request: {request}", "NOT_FOUND")


def version_not_found(name: str, version: int) -> TFServingError:
    """GET status of a version the model does not have."""
    return TFServingError(f"Could not find version {version} of model {name}", "NOT_FOUND")


def no_versions(name: str) -> TFServingError:
    """GET status of a model with no version at all."""
    return TFServingError(f"Could not find any versions of model {name}", "NOT_FOUND")


def unknown_label(label: str) -> TFServingError:
    """TF Serving answers this with INVALID_ARGUMENT (400); Pinpoint's contract says 404."""
    return TFServingError(f"Unrecognized servable version label: {label}", "NOT_FOUND")


# ---------------------------------------------------------------------------------------------
# Routes (http_rest_api_util.cc)

_PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII)
_BOTH = re.compile(r"/v1/models/([^/:]+)/versions/(\d+)/labels/([^/:]+)(?:/metadata|:\w+)?",
                   re.IGNORECASE | re.ASCII)
_INT64_MAX = 2**63 - 1


class ModelPath(NamedTuple):
    name: str
    version: int | None
    label: str | None
    verb: str | None  # "predict", "classify", "regress", "metadata", or None (status)


def parse_model_path(path: str, method: str | None = None) -> ModelPath:
    """Split a TF Serving route: /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata|:predict|...].

    `path` is the raw request path (still percent-encoded, no query string): the name and the label
    are percent-decoded after matching, as TF Serving does. `method` ("GET" or "POST") picks the
    route as TF Serving does (GET: status or /metadata; POST: :predict, :classify, :regress); without
    it either form is accepted. Matching is case-insensitive; the verb comes back lower-case.
    Raises TFServingError (400) like TF Serving: "Malformed request: ...", "Missing model name in
    request.", "Failed to convert version: ...", and for a version and a label together TF's
    FillModelSpecWithNameVersionAndLabel message.
    """
    method = method.upper() if method else None
    both = _BOTH.fullmatch(path)
    if both:
        raise invalid(f"Both model version ({both.group(2)}) and model version label "
                      f"({_decode(both.group(3), 'model version label')}) cannot be supplied.")
    match = None
    if method in (None, "POST"):
        match = _PREDICTION.fullmatch(path)
    if match is None and method in (None, "GET"):
        match = _STATUS.fullmatch(path)
        if match is not None and match.group(1) is None:
            raise invalid("Missing model name in request.")
    if match is None:
        raise invalid(f"Malformed request: {method or 'GET'} {path}")
    name, version_text, label, verb = match.groups()
    version = None
    if version_text is not None:
        version = int(version_text)
        if version > _INT64_MAX:
            raise invalid(f"Failed to convert version: {version_text} to numeric.")
    name = _decode(name, "model name")
    if label is not None:
        label = _decode(label, "model version label")
    return ModelPath(name, version, label, verb.lower() if verb else None)


def _decode(text: str, what: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid(f"Failed to decode {what}:{text}") from None


# ---------------------------------------------------------------------------------------------
# Signatures

# numpy dtype -> TF DataType name (the metadata's "dtype") and DataTypeString (error messages).
_DT = {
    "float32": ("DT_FLOAT", "float"), "float64": ("DT_DOUBLE", "double"),
    "float16": ("DT_HALF", "half"), "int8": ("DT_INT8", "int8"), "int16": ("DT_INT16", "int16"),
    "int32": ("DT_INT32", "int32"), "int64": ("DT_INT64", "int64"), "uint8": ("DT_UINT8", "uint8"),
    "uint16": ("DT_UINT16", "uint16"), "uint32": ("DT_UINT32", "uint32"),
    "uint64": ("DT_UINT64", "uint64"), "bool": ("DT_BOOL", "bool"),
    "complex64": ("DT_COMPLEX64", "complex64"), "complex128": ("DT_COMPLEX128", "complex128"),
}
_STRING = np.dtype(object)


def _normal_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    return _STRING if dtype.kind in "OSU" else dtype


def dtype_enum(dtype: Any) -> str:
    """The TF DataType name of a numpy dtype: DT_FLOAT, DT_STRING (object, bytes, str), ..."""
    dtype = _normal_dtype(dtype)
    return "DT_STRING" if dtype == _STRING else _DT.get(dtype.name, ("DT_INVALID", ""))[0]


def _dtype_name(dtype: np.dtype) -> str:
    return "string" if dtype == _STRING else _DT.get(dtype.name, ("", dtype.name))[1]


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of a signature.

    name: the alias clients use (the signature's key); dtype: a numpy dtype (object, bytes or str for
    DT_STRING); shape: dims with -1 for unknown (the batch), or None for unknown rank; tensor: the
    graph tensor ("input:0") shown by the metadata; images: for a numeric input, also accept
    {"b64": <an encoded image>} per example (Pinpoint's extension: the request then carries the list of
    encoded images for this input instead of a tensor).
    """

    name: str
    dtype: Any
    shape: tuple[int, ...] | None = None
    tensor: str | None = None
    images: bool = False

    def __post_init__(self):
        object.__setattr__(self, "dtype", _normal_dtype(self.dtype))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


@dataclass(frozen=True)
class Signature:
    """A model's serving signature: its inputs and outputs (in order) and its method name."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    method_name: str = PREDICT_METHOD
    name: str = SERVING_DEFAULT  # its key: a request's signature_name may say it ("" is serving_default)

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def input(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)


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


# ---------------------------------------------------------------------------------------------
# Reading JSON (json_tensor.cc ParseJson)

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
        raise invalid(f"JSON Value: {_debug(document)} Is not object")
    return document


def _debug(value: Any) -> str:
    """JsonValueToDebugString: the value as JSON, cut at 256 bytes."""
    try:
        text = json.dumps(value, separators=(", ", ": "), default=repr)
    except (ValueError, RecursionError):
        text = repr(value)
    return text[:256]


def _json_type(value: Any) -> str:
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


def _signature_name(document: Mapping[str, Any], missing: str, served: str = SERVING_DEFAULT) -> str:
    """FillSignature plus the look-up: one signature is served (`served`; "" names serving_default)."""
    if "signature_name" not in document:
        return served
    name = document["signature_name"]
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {_debug(document)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    if name not in ("", SERVING_DEFAULT, served):
        raise invalid(missing.format(name=name))
    return served


# ---------------------------------------------------------------------------------------------
# Tensors from JSON (json_tensor.cc AddValueToTensor, FillTensorProto, AddInstanceItem)

def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _b64decode(value: Any) -> bytes:
    if not _is_b64(value):
        raise invalid(f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
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
    return invalid(f"JSON Value: {_debug(value)} Type: {_json_type(value)} "
                   f"is not of expected type: {_dtype_name(dtype)}")


def _scalar(value: Any, dtype: np.dtype) -> Any:
    """AddValueToTensor: one leaf, checked against the input's dtype."""
    if dtype == _STRING:
        if isinstance(value, dict):
            return _b64decode(value)
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
    raise TFServingError(f"Conversion of JSON Value: {_debug(value)} to type: {_dtype_name(dtype)}",
                         "UNIMPLEMENTED")


def _fill(value: Any, level: int, dims: tuple[int, ...], dtype: np.dtype, out: list) -> None:
    """FillTensorProto: every leaf at the tensor's rank, every list of the size the first one had."""
    rank = len(dims)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} "
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
    if dtype == _STRING:
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
        if dtype == _STRING:
            if not kinds <= {str, dict}:
                return None
            out = np.empty(flat.shape, dtype=object)
            for i, item in enumerate(flat):
                out[i] = item.encode("utf-8") if isinstance(item, str) else _b64decode(item)
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
        if spec.images and spec.dtype != _STRING and (self.images is not None or (
                not self.items and _is_b64(value))):
            if not _is_b64(value):
                raise invalid(f"JSON Value: {_debug(value)} is not an image: the first instance was "
                              "{\"b64\": ...}, so every instance must be")
            self.images = (self.images or []) + [_b64decode(value)]
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
    if any(spec.images and spec.dtype != _STRING for spec in specs):
        return None
    if objects:
        names = {spec.name for spec in specs}
        if not all(isinstance(e, dict) and not _is_b64(e) and e.keys() == names for e in instances):
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
        raise invalid(f"JSON Value: {_debug(document)} Expecting 'instances' to be an list/array")
    if not instances:
        raise invalid(f"JSON Value: {_debug(document)} No values in 'instances' array")
    specs = signature.inputs
    if not isinstance(instances[0], dict) and len(specs) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")
    objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not objects and len(specs) > 1:  # a {"b64": ...} first instance: still not named inputs
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")
    fast = _row_fast(instances, signature, objects)
    if fast is not None:
        return fast, frozenset()
    columns = {spec.name: _Column(spec) for spec in specs}
    names = sorted(columns)
    for index, element in enumerate(instances):
        element_is_object = isinstance(element, dict) and not _is_b64(element)
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
                              f"{_debug(element)} keys must be equal to: {','.join(names)}")
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
    if spec.images and spec.dtype != _STRING:
        if _is_b64(value):
            return [_b64decode(value)]
        if isinstance(value, list) and value and all(_is_b64(v) for v in value):
            return [_b64decode(v) for v in value]
    return _tensor(value, spec.dtype)


def _from_inputs(inputs: Any, signature: Signature):
    """FillTensorMapFromInputsMap."""
    specs = signature.inputs
    if not isinstance(inputs, dict) or _is_b64(inputs):
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
        raise invalid(f"JSON Value: {_debug(document)} Is not object")
    signature_name = _signature_name(
        document, 'Serving signature name: "{name}" not found in signature def', signature.name)
    if not signature.inputs:
        raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid(f"JSON Value: {_debug(document)} Not formatted correctly expecting only one "
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


# ---------------------------------------------------------------------------------------------
# JSON from tensors (json_tensor.cc MakeJsonFromTensors, WriteDecimal)

class JsonFloat(float):
    """A float that remembers TF Serving's text for it. json.dumps writes the same value (shortest
    repr); `dumps` writes the text itself."""

    __slots__ = ("text",)

    def __new__(cls, text: str, value: float | None = None):
        if value is None:
            value = float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(text, text))
        return _json_float(value, text)


def _json_float(value: float, text: str, _new=float.__new__) -> JsonFloat:
    number = _new(JsonFloat, value)
    number.text = text
    return number


def format_float(value: float, dtype: Any = np.float32) -> str:
    """WriteDecimal: "%g" (absl::StrCat's six digits) when it reads back as the same float32 (or
    float64), else max_digits10 ("%.9g" / "%.17g"); ".0" added to whole numbers without an exponent;
    NaN, Infinity, -Infinity as those tokens."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "-Infinity" if number < 0 else "Infinity"
    text = "%g" % number
    if np.dtype(dtype) == np.float32:
        if np.float32(float(text)) != np.float32(number):
            text = "%.9g" % number
    elif float(text) != number:
        text = "%.17g" % number
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _floats(array: np.ndarray) -> list[JsonFloat]:
    """format_float for a whole array, the parsing and comparing done by numpy."""
    flat = array.ravel()
    wide = flat.astype(np.float64).tolist()
    texts = ["%g" % x for x in wide]
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.array(texts, dtype=np.float64)
        retry = np.flatnonzero((values.astype(flat.dtype) != flat) & np.isfinite(flat)).tolist()
        values = values.tolist()
    if retry:
        long_format = "%.9g" if flat.dtype == np.float32 else "%.17g"
        longer = [long_format % wide[i] for i in retry]
        for i, text, value in zip(retry, longer, np.array(longer, dtype=np.float64).tolist()):
            texts[i], values[i] = text, value
    result = []
    append = result.append
    for x, text, value in zip(wide, texts, values):
        if x - x != 0:  # NaN or an infinity
            text = "NaN" if x != x else "Infinity" if x > 0 else "-Infinity"
        elif "." not in text and "e" not in text:
            text += ".0"
        append(_json_float(value, text))
    return result


def _strings(array: np.ndarray, as_b64: bool) -> list:
    result = []
    for item in array.ravel().tolist():
        data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if not as_b64:
            try:
                result.append(data.decode("utf-8"))
                continue
            except UnicodeDecodeError:  # TF would write the raw bytes: not JSON; send them as b64
                pass
        result.append({"b64": base64.b64encode(data).decode("ascii")})
    return result


def _nest(flat: list, shape: tuple[int, ...]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


_WRITABLE_INTS = {"int8", "int16", "int32", "uint8", "int64", "uint32", "uint64"}


def _to_json(name: str, value: Any) -> Any:
    """AddTensorValues for one whole tensor; IsNamedTensorBytes decides b64 for strings."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    dtype = array.dtype
    if dtype.name in ("float32", "float64"):
        flat = _floats(array)
    elif dtype.name in _WRITABLE_INTS or dtype.kind == "b":
        flat = array.ravel().tolist()
    elif dtype.kind in "OSU":
        flat = _strings(array, name.endswith(BYTES_SUFFIX))
    else:
        raise invalid(f"Failed to write JSON value for tensor type: {_dtype_name(dtype)}")
    return _nest(flat, array.shape)


def render_predict(outputs: Mapping[str, Any], form: str) -> dict[str, Any]:
    """MakeJsonFromTensors: {"predictions": ...} for "row", {"outputs": ...} for "columnar".

    One output: its name left out (row: a list with one entry per example; columnar: the tensor).
    Several: row gives a list of objects keyed by output name, columnar one object keyed by name.
    Floats are JsonFloat (TF Serving's printed value and text); DT_STRING outputs whose name ends in
    "_bytes" are {"b64": ...}, others UTF-8 text.
    """
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    arrays = {name: value if isinstance(value, np.ndarray) else np.asarray(value)
              for name, value in sorted(outputs.items())}
    if form == "columnar":
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            return {"outputs": _to_json(name, array)}
        return {"outputs": {name: _to_json(name, array) for name, array in arrays.items()}}
    if form != "row":
        raise invalid("Invalid request format")
    batch = -1
    for name, array in arrays.items():
        if array.ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                          f"expecting: {batch}")
        batch = array.shape[0]
    rows = {name: _to_json(name, array) for name, array in arrays.items()}
    if len(rows) == 1:
        return {"predictions": next(iter(rows.values()))}
    return {"predictions": [{name: rows[name][i] for name in rows} for i in range(batch)]}


# ---------------------------------------------------------------------------------------------
# Classify (json_tensor.cc FillClassifyRegressRequestFromJson, MakeJsonFromClassificationResult)

_KIND = {bytes: "bytes", float: "float", int: "int64"}


def _feature_value(value: Any, name: str, values: list) -> None:
    """AddValueToFeature: one element of a feature, of the kind the feature already has."""
    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64(value)):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")
    if isinstance(value, bool):
        item: Any = int(value)
    elif isinstance(value, dict):
        item = _b64decode(value)
    elif isinstance(value, str):
        item = value.encode("utf-8")
    elif isinstance(value, float) or value > 2**64 - 1 or value < -(2**63):
        try:
            with np.errstate(over="ignore"):  # a double in rapidjson; float_list holds float32
                item = float(np.float32(float(value)))
        except OverflowError:
            raise invalid("JSON Parse error: Number too big to be stored in double.") from None
    else:
        if value > 2**63 - 1:
            raise invalid(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        item = value
    if values and type(values[0]) is not type(item):
        raise invalid(f"Unexpected element type in feature: {name} expecting type: "
                      f"{_KIND[type(values[0])]}")
    values.append(item)


def _example(value: Any) -> dict[str, list]:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = {}
    for name, content in value.items():
        values: list = []
        for item in content if isinstance(content, list) else [content]:
            _feature_value(item, name, values)
        example[name] = values
    return example


def parse_classify(document: Mapping[str, Any]) -> list[dict[str, list]]:
    """A :classify body as tf.Examples: one dict per entry of "examples", feature name -> its values
    (a list of bytes (strings and {"b64"}), of floats (float32 precision) or of ints (bools as 0/1);
    a single value is a list of one). "context" is merged into every example as TF Serving does when
    it serializes ExampleListWithContext (context first, so an example's own feature wins)."""
    if not isinstance(document, Mapping):
        raise invalid(f"JSON Value: {_debug(document)} Is not object")
    _signature_name(document, "No signature was found with the name: {name}")
    context = _example(document["context"]) if "context" in document else {}
    if "examples" not in document:
        raise invalid(f"JSON Value: {_debug(document)} When method is classify, key 'examples' "
                      "is expected and was not found")
    examples = document["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {_debug(document)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {_debug(document)} 'examples' value is an empty array")
    return [{**context, **_example(example)} for example in examples]


def render_classify(results: Sequence[Sequence[tuple[str, float]]]) -> dict[str, Any]:
    """{"results": [[[label, score], ...] per example]}: TF Serving's code says "results" (its doc
    says "result"); scores are float32 printed as WriteDecimal does."""
    if not results:
        raise invalid("Cannot convert empty ClassificationResults to JSON")
    out = []
    for classes in results:
        scores = _floats(np.asarray([score for _, score in classes], dtype=np.float32))
        out.append([[str(label), score] for (label, _), score in zip(classes, scores)])
    return {"results": out}


# ---------------------------------------------------------------------------------------------
# Status and metadata (protobuf JSON: always_print_fields_with_no_presence; metadata also
# preserve_proto_field_names; int64 as strings; enums by name)

STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: Any  # a STATES name, or an enum member whose .name is one
    error_code: str | None = None  # TF error code name; None: OK, or UNKNOWN when there is a message
    error_message: str = ""


def _version_entry(item: Any) -> dict[str, Any]:
    if not isinstance(item, VersionStatus):
        item = VersionStatus(*item) if isinstance(item, (tuple, list)) else VersionStatus(**item)
    state = getattr(item.state, "name", item.state)
    state = str(state).upper()
    if state not in STATES:
        raise ValueError(f"unknown model version state {item.state!r}")
    code = item.error_code or ("UNKNOWN" if item.error_message else "OK")
    return {
        "version": str(int(item.version)),
        "state": state,
        # ToStatusProto keeps the message only for an error
        "status": {"error_code": code, "error_message": item.error_message if code != "OK" else ""},
    }


def status_document(versions: Iterable[Any]) -> dict[str, Any]:
    """GetModelStatusResponse as TF Serving prints it, newest version first (its VersionMap order).

    Each item a VersionStatus, a (version, state[, error_code[, error_message]]) tuple or a dict of
    those fields. Giving no version is the caller's 404 (see no_versions)."""
    entries = sorted((_version_entry(v) for v in versions), key=lambda e: -int(e["version"]))
    return {"model_version_status": entries}


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    if spec.shape is None:
        shape = {"dim": [], "unknown_rank": True}
    else:
        shape = {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False}
    info: dict[str, Any] = {"dtype": dtype_enum(spec.dtype), "tensor_shape": shape}
    if spec.tensor is not None:  # TensorInfo.name sits in a oneof: printed only when set
        info["name"] = spec.tensor
    return info


def signature_def(signature: Signature) -> dict[str, Any]:
    return {
        "inputs": {spec.name: _tensor_info(spec) for spec in signature.inputs},
        "outputs": {spec.name: _tensor_info(spec) for spec in signature.outputs},
        "method_name": signature.method_name,
        "defaults": {},
    }


def metadata_document(name: str, version: int,
                      signature: Signature | Mapping[str, Signature]) -> dict[str, Any]:
    """GetModelMetadataResponse as TF Serving prints it (http_rest_api_util.cc ToJsonString):
    model_spec with signature_name "" and version as a string, then the SignatureDefMap. A single
    Signature is "serving_default"."""
    signatures = {SERVING_DEFAULT: signature} if isinstance(signature, Signature) else dict(signature)
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(int(version))},
        "metadata": {"signature_def": {"signature_def": {
            key: signature_def(value) for key, value in signatures.items()}}},
    }


# ---------------------------------------------------------------------------------------------
# Writing

def dumps(document: Any) -> str:
    """JSON text with TF Serving's number text (JsonFloat.text; other floats as WriteDecimal prints a
    double). NaN/Infinity are written as TF Serving writes them (not strict JSON, as in TF)."""
    parts: list[str] = []
    _write(document, parts)
    return "".join(parts)


def _write(value: Any, parts: list[str]) -> None:
    if isinstance(value, JsonFloat):
        parts.append(value.text)
    elif isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        parts.append(json.dumps(value))
    elif isinstance(value, float):
        parts.append(format_float(value, np.float64))
    elif isinstance(value, Mapping):
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                parts.append(", ")
            parts.append(json.dumps(str(key)))
            parts.append(": ")
            _write(item, parts)
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(", ")
            _write(item, parts)
        parts.append("]")
    elif isinstance(value, np.generic):
        _write(value.item(), parts)
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
