"""The Open Inference Protocol (KServe v2) over Pinpoint's models, for REST (service/http/api/v2.py) and gRPC
(service/grpc/server.py): health, model metadata and readiness, and inference with typed tensors.

A SavedModel's signature takes its named inputs and gives its named outputs, any signature chosen by
the request's `parameters.signature_name` (service/protocols/named_tensors.py). Any other Pinpoint
model has one input, `input`, and one output, `scores`, as on the TF Serving routes (its tensors
service/protocols/model_input.py, its shapes TF Serving's signature, service/protocols/tfserving/signatures.py);
the model runs as every route's do (service/serving/model_run.py: the same manager, batching, deadlines, limits
and retry):
- `input` is the model's input tensor (FP32 [-1, H, W, C] or its declared layout), already cropped and
  normalised; or, as a BYTES tensor [N], N encoded images, each resized as the model's crop is;
- `scores` is FP32 [N, labels]: the graph's raw output rows (no softmax added).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.engine import Engine
from service.errors import PinpointError
from service.protocols import model_input, named_tensors
from service.protocols.tfserving import signatures
from service.protocols.tfserving.error_codes import TFServingError
from service.serving import model_run
from service.serving.manager import ModelRef, State

# The protocol's datatypes <-> numpy.
DATATYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
             "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
             "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}
NAMES = {np.dtype(v).name: k for k, v in DATATYPES.items()}


class OIPError(Exception):
    """An error of the protocol: its message (REST {"error": message}), HTTP status and gRPC code name."""

    GRPC = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
            413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 501: "UNIMPLEMENTED",
            503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED", 500: "INTERNAL"}

    def __init__(self, message: str, status: int = 400, retry_after: float | None = None):
        super().__init__(message)
        self.message, self.status, self.retry_after = message, status, retry_after

    @property
    def grpc_code(self) -> str:
        return self.GRPC.get(self.status, "UNKNOWN")

    @classmethod
    def of(cls, error: Exception) -> OIPError:
        if isinstance(error, OIPError):
            return error
        if isinstance(error, PinpointError):
            error = TFServingError.from_pinpoint(error)
        if isinstance(error, TFServingError):
            return cls(error.message, error.status, error.retry_after)
        raise error


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    value: np.ndarray  # BYTES: an object array of bytes


def ref(name: str, version: str | None) -> ModelRef:
    if not version:
        return ModelRef(name, None, None)
    if not version.isdigit():
        raise OIPError(f"model version must be a number, not {version!r}")
    return ModelRef(name, int(version), None)


def live() -> bool:
    return True


def ready(engine: Engine) -> bool:
    return bool(engine.ready) and not getattr(engine.manager, "draining", False)


def model_ready(engine: Engine, name: str, version: str | None) -> bool:
    wanted = ref(name, version)
    versions = engine.manager.snapshot().get(name)
    if not versions:
        raise OIPError(f"Request for unknown model: '{name}' is not found", 404)
    if wanted.version is None:
        default = engine.manager.default_version(name)
        return default is not None and default.state is State.AVAILABLE
    match = [v for v in versions if v.version == wanted.version]
    if not match:
        raise OIPError(f"Request for unknown model: '{name}' version {wanted.version} is not found", 404)
    return match[0].state is State.AVAILABLE


def _shapes(version) -> tuple[str, list[int], list[int]]:
    spec = signatures.signature(version)
    feed, fetch = signatures.aliases(version)
    inp = next(t for t in spec.inputs if t.name == feed)
    out = next(t for t in spec.outputs if t.name == fetch)
    datatype = "BYTES" if inp.dtype == np.dtype(object) else NAMES.get(inp.dtype.name, "FP32")
    return datatype, list(inp.shape or [-1]), list(out.shape or [-1])


def check_outputs(version, wanted) -> None:
    """Outputs a request asks for by name: the model's one output (`scores`, or a SavedModel's alias)."""
    fetch = signatures.aliases(version)[1]
    unknown = [name for name in (wanted or ()) if name != fetch]
    if unknown:
        raise OIPError(f"unknown output {unknown}: the model has {fetch!r}")


def _tensor_metadata(tensors) -> list[dict]:
    return [{"name": t.name, "datatype": "BYTES" if t.dtype == np.dtype(object) else NAMES.get(t.dtype.name, "FP32"),
             "shape": list(t.shape or [-1])} for t in tensors]


def metadata(engine: Engine, name: str, version: str | None) -> dict:
    try:
        with engine.manager.acquire([ref(name, version)]) as lease:
            held = lease.versions[0]
            versions = [str(v.version) for v in engine.manager.snapshot().get(name, [])
                        if v.state is State.AVAILABLE]
            platform = f"pinpoint_{held.backend or 'tensorflow'}"
            if held.spec.tensors_only:  # its served signature's every input and output
                served = signatures.signature(held)
                return {"name": name, "versions": versions, "platform": platform,
                        "inputs": _tensor_metadata(served.inputs), "outputs": _tensor_metadata(served.outputs)}
            datatype, in_shape, out_shape = _shapes(held)
            feed, fetch = signatures.aliases(held)
            return {"name": name, "versions": versions, "platform": platform,
                    "inputs": [{"name": feed, "datatype": datatype, "shape": in_shape}],
                    "outputs": [{"name": fetch, "datatype": "FP32", "shape": out_shape}]}
    except (PinpointError, TFServingError) as error:
        raise _not_found(OIPError.of(error), name, version) from None


def _not_found(error: OIPError, name: str, version: str | None = None) -> OIPError:
    """Triton's words for a model or version it does not have."""
    if error.status == 404:
        which = f"'{name}' version {version}" if version else f"'{name}'"
        return OIPError(f"Request for unknown model: {which} is not found", 404)
    return error


SIGNATURE_MISSING = "the model has no signature {name!r} (parameters.signature_name)"


def infer(engine: Engine, name: str, version: str | None, inputs: list[Tensor], deadline_ms: float,
          request_id: str = "", outputs=None, signature_name: str = "") -> tuple[str, list[Tensor]]:
    """Run the model on `inputs` (one tensor named "input", or a SavedModel's input alias; a SavedModel's
    signature takes all its named inputs); (the version that ran, its outputs). `outputs`: the output
    names asked for (None: all); `signature_name`: a SavedModel's signature ("": the served one)."""
    def run(models: model_run.Models) -> tuple[str, list[Tensor]]:
        held = models.version
        chosen = named_tensors.find(held, signature_name, SIGNATURE_MISSING)
        if named_tensors.wanted(held, chosen):
            values = {}
            for tensor in inputs:
                if tensor.name in values:
                    raise OIPError(f"input {tensor.name!r} is given twice")
                values[tensor.name] = tensor.value
            answered = named_tensors.run(models, chosen, values, sorted(outputs or ()))
            return str(held.version), [Tensor(alias, NAMES.get(value.dtype.name, "BYTES"), list(value.shape), value)
                                       for alias, value in sorted(answered.items())]
        feed, fetch = signatures.aliases(held)
        check_outputs(held, outputs)
        if len(inputs) != 1 or inputs[0].name != feed:
            raise OIPError(f"expected one input tensor named {feed!r}, got {[t.name for t in inputs]}")
        tensor = inputs[0]
        datatype, in_shape, _ = _shapes(held)
        if tensor.datatype == "BYTES" and datatype != "BYTES":  # encoded images, each resized as the crop is
            if tensor.value.ndim != 1:
                raise OIPError(f"a BYTES {feed!r} is a list of encoded images: shape [N], not {tensor.shape}")
            scores = model_input.predict(engine, models, [bytes(v) for v in tensor.value], True)
        else:
            if tensor.datatype != datatype:
                raise OIPError(f"input {feed!r} has datatype {tensor.datatype}; the model takes {datatype} "
                               f"(or BYTES: encoded images)")
            if len(tensor.shape) != len(in_shape) or any(
                    want >= 0 and got != want for got, want in zip(tensor.shape[1:], in_shape[1:])):
                raise OIPError(f"input {feed!r} has shape {tensor.shape}; the model takes {in_shape}")
            scores = model_input.predict(engine, models, tensor.value, False)
        scores = np.asarray(scores, dtype=np.float32)
        return str(held.version), [Tensor(fetch, "FP32", list(scores.shape), scores)]

    try:
        return model_run.run(engine.manager, [ref(name, version)], run, deadline_ms)
    except (PinpointError, TFServingError) as error:
        raise _not_found(OIPError.of(error), name, version) from None


def array(datatype: str, shape: list[int], flat) -> np.ndarray:
    """A tensor from its flat (or nested) values, checked against its shape."""
    if datatype not in DATATYPES:
        raise OIPError(f"unknown datatype {datatype!r}")
    try:
        if datatype == "BYTES":
            values = np.empty(int(np.prod(shape)) if shape else 1, dtype=object)
            items = list(_flatten(flat))
            if len(items) != values.size:
                raise ValueError
            values[:] = items
            return values.reshape(shape)
        return np.asarray(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except (ValueError, TypeError):
        raise OIPError(f"the data of a {datatype} tensor does not fill its shape {shape}") from None


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def from_raw(datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """A tensor from the binary form: little-endian values; BYTES as 4-byte length + bytes each."""
    if datatype not in DATATYPES:
        raise OIPError(f"unknown datatype {datatype!r}")
    count = int(np.prod(shape)) if shape else 1
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise OIPError("BYTES data ends inside a length prefix")
            size = int.from_bytes(raw[offset:offset + 4], "little")
            items.append(raw[offset + 4:offset + 4 + size])
            offset += 4 + size
        if len(items) != count or offset != len(raw):
            raise OIPError(f"the BYTES data holds {len(items)} elements; shape {shape} needs {count}")
        values = np.empty(count, dtype=object)
        values[:] = items
        return values.reshape(shape)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise OIPError(f"the binary data is {len(raw)} bytes; a {datatype} tensor of shape {shape} "
                       f"is {count * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def to_raw(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        return b"".join(len(b).to_bytes(4, "little") + bytes(b) for b in tensor.value.ravel())
    return np.ascontiguousarray(tensor.value, dtype=np.dtype(DATATYPES[tensor.datatype]).newbyteorder("<")).tobytes()
