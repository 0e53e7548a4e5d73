"""Signatures as TF Serving shows them: TF's dtypes, a signature's named inputs and outputs, the ones each
Pinpoint version serves, and the GetModelMetadata document (get_model_metadata_impl.cc, printed as
http_rest_api_util.cc ToJsonString does: proto field names, int64 as strings, enums by name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from service.serving.manager import Version

SERVING_DEFAULT = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

# numpy dtype -> TF DataType name (the metadata's "dtype") and DataTypeString (error messages).
_DT = {
    "float32": ("DT_FLOAT", "float"), "float64": ("DT_DOUBLE", "double"),
    "float16": ("DT_HALF", "half"), "int8": ("DT_INT8", "int8"), "int16": ("DT_INT16", "int16"),
    "int32": ("DT_INT32", "int32"), "int64": ("DT_INT64", "int64"), "uint8": ("DT_UINT8", "uint8"),
    "uint16": ("DT_UINT16", "uint16"), "uint32": ("DT_UINT32", "uint32"),
    "uint64": ("DT_UINT64", "uint64"), "bool": ("DT_BOOL", "bool"),
    "complex64": ("DT_COMPLEX64", "complex64"), "complex128": ("DT_COMPLEX128", "complex128"),
}
STRING = np.dtype(object)


def normal_dtype(dtype: Any) -> np.dtype:
    dtype = np.dtype(dtype)
    return STRING if dtype.kind in "OSU" else dtype


def dtype_enum(dtype: Any) -> str:
    """The TF DataType name of a numpy dtype: DT_FLOAT, DT_STRING (object, bytes, str), ..."""
    dtype = normal_dtype(dtype)
    return "DT_STRING" if dtype == STRING else _DT.get(dtype.name, ("DT_INVALID", ""))[0]


def dtype_name(dtype: np.dtype) -> str:
    return "string" if dtype == STRING else _DT.get(dtype.name, ("", dtype.name))[1]


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
        object.__setattr__(self, "dtype", normal_dtype(self.dtype))
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


def signature(version: Version) -> Signature:
    """The signature a version serves: a SavedModel's own (its aliases, dtypes, shapes and tensors),
    else Pinpoint's `input` -> `scores` from model.toml."""
    if version.spec.is_saved_model:
        return saved_signatures(version)[version.spec.signature_name]
    spec = version.spec.input
    if spec.kind == "encoded":
        shape, dtype = [-1], object
    elif spec.kind == "flat":
        shape, dtype = [-1, spec.height * spec.width * spec.channels], np.dtype(spec.dtype)
    elif spec.layout == "nchw":
        shape, dtype = [-1, spec.channels, spec.height, spec.width], np.dtype(spec.dtype)
    else:
        shape, dtype = [-1, spec.height, spec.width, spec.channels], np.dtype(spec.dtype)
    return Signature(
        inputs=(TensorSpec("input", dtype, shape, tensor=_tensor_name(spec.tensor), images=spec.kind != "encoded"),),
        outputs=(TensorSpec("scores", np.float32, [-1, len(version.spec.labels)],
                            tensor=_tensor_name(version.spec.output_tensor)),))


def saved_signatures(version: Version) -> dict[str, Signature]:
    """Every signature of a SavedModel version, as TF Serving's metadata shows them. The input a request
    may also send as {"b64": <an encoded image>} is the served signature's image input."""
    spec = version.spec
    images = spec.input.kind == "image"
    documents = {}
    for key, info in spec.signatures:
        served = key == spec.signature_name
        documents[key] = Signature(  # as saved: __saved_model_init_op too, its NoOp output DT_INVALID
            inputs=tuple(TensorSpec(t.key, t.dtype or _INVALID, t.shape, tensor=t.name,
                                    images=served and images and t.key == spec.input.tensor) for t in info.inputs),
            outputs=tuple(TensorSpec(t.key, t.dtype or _INVALID, t.shape, tensor=t.name) for t in info.outputs),
            method_name=info.method_name, name=key)
    return documents


_INVALID = np.dtype("V")  # no TF DataType: shown as DT_INVALID


def aliases(version: Version) -> tuple[str, str]:
    """The served signature's input and output aliases: a SavedModel's own, else `input` and `scores`."""
    if version.spec.is_saved_model:
        return version.spec.input.tensor, version.spec.output_tensor
    return "input", "scores"


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"

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
