"""A SavedModel's signatures as a tensor protocol sees them (TF Serving's Predict, the Open Inference
Protocol's infer): several named inputs in, several named outputs back, any signature by its name.

A request goes this way when the version is a SavedModel and either takes named tensors only (its
served signature is not one crop -> one output of scores, service/serving/repository.py) or names a
signature other than the served one; otherwise the one-input path (service/protocols/model_input.py)
keeps its batching. What is checked here, before the call reaches the model, is what TF Serving checks
(predict_util.cc, saved_model/util.cc), in its words, so a bad request is a 400 / INVALID_ARGUMENT and
never a model failure: the inputs' names, dtypes and shapes against the signature, one batch size,
and the outputs asked for (`output_filter`, the OIP's `outputs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from service.protocols.tfserving.error_codes import TFServingError, invalid
from service.protocols.tfserving.signatures import (
    SERVING_DEFAULT,
    STRING,
    Signature,
    dtype_name,
    saved_signatures,
    signature,
)
from service.serving import model_run
from service.serving.manager import Version
from service.serving.tensor_call import TensorCall, callable_signatures


def find(version: Version, name: str, missing: str) -> Signature:
    """The signature a request names ("" is the served one): any callable one of a SavedModel, else
    Pinpoint's one. `missing`: the protocol's text for an unknown name ({name} in it)."""
    spec = version.spec
    if not spec.is_saved_model:
        if name not in ("", SERVING_DEFAULT):
            raise TFServingError(missing.format(name=name))
        return signature(version)
    name = name or spec.signature_name
    if name not in callable_signatures(spec.signatures):
        raise TFServingError(missing.format(name=name))
    return saved_signatures(version)[name]


def wanted(version: Version, chosen: Signature) -> bool:
    """Whether this signature of this version runs as named tensors (else as one input's rows)."""
    spec = version.spec
    return spec.is_saved_model and (spec.tensors_only or chosen.name != spec.signature_name)


def run(models: model_run.Models, chosen: Signature, inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The held version's named outputs (those asked for, else all) for these named inputs."""
    check_inputs(chosen, inputs)
    check_outputs(chosen, outputs)
    aliases = [spec.name for spec in chosen.inputs]
    batched = all(spec.shape and spec.shape[0] < 0 for spec in (*chosen.inputs, *chosen.outputs))
    call = TensorCall(chosen.name, {alias: inputs[alias] for alias in aliases}, tuple(outputs), batched)
    return models.run(models.version, call)


def check_inputs(chosen: Signature, inputs: Mapping[str, np.ndarray]) -> None:
    expected = sorted(spec.name for spec in chosen.inputs)
    sent = sorted(inputs)
    if len(sent) != len(expected):  # VerifyRequestInputsSize, then GetInputValues looks up each alias
        extra = [name for name in sent if name not in expected]
        missing = [name for name in expected if name not in sent]
        raise invalid(f"input size does not match signature: {len(sent)}!={len(expected)} "
                      f"len({{{','.join(sent)}}}) != len({{{','.join(expected)}}}). "
                      f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    unknown = [name for name in sent if name not in expected]
    if unknown:
        raise invalid(f"input tensor alias not found in signature: {unknown[0]}. "
                      f"Inputs expected to be in the set {{{','.join(expected)}}}.")
    batches = {}
    for index, spec in enumerate(sorted(chosen.inputs, key=lambda s: s.name)):
        value = inputs[spec.name]
        if not isinstance(value, np.ndarray):
            raise invalid(f"input {spec.name!r} takes a tensor, not a list of encoded images")
        have = STRING if value.dtype.kind in "OSU" else value.dtype
        if have != spec.dtype:
            raise invalid(f"Expects arg[{index}] to be {dtype_name(spec.dtype)} but {dtype_name(have)} is provided")
        if spec.shape is not None:
            if value.ndim != len(spec.shape) or any(want >= 0 and got != want
                                                    for got, want in zip(value.shape, spec.shape)):
                raise invalid(f"Input tensor alias: {spec.name} has shape {_dims(value.shape)} "
                              f"but the signature's shape is {_dims(spec.shape)}")
            if spec.shape and spec.shape[0] < 0:
                batches[spec.name] = value.shape[0]
    if len(set(batches.values())) > 1:
        sizes = ", ".join(f"{name}: {size}" for name, size in sorted(batches.items()))
        raise invalid(f"Inputs have different batch sizes ({sizes}); send one size for all")


def check_outputs(chosen: Signature, outputs: Sequence[str]) -> None:
    """TF Serving's output_filter checks: each a known alias, none twice."""
    known = sorted(spec.name for spec in chosen.outputs)
    seen = set()
    for alias in outputs:
        if alias not in known:
            raise invalid(f"output tensor alias not found in signature: {alias} "
                          f"Outputs expected to be in the set {{{','.join(known)}}}.")
        if alias in seen:
            raise invalid(f"duplicate output tensor alias: {alias}")
        seen.add(alias)


def _dims(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
