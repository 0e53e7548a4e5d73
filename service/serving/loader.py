"""Model files -> Servable: one version of one model, ready for the inference thread.

Which backend executes it (docs/models.md, "Backends"), chosen per version on its loader thread:
- `model.onnx`: ONNX Runtime, as exported. TensorFlow is not imported for it.
- a SavedModel directory (saved_model.pb + variables/): as a frozen graph, its served signature frozen
  first (service/serving/backends/saved_model.py), and its other signatures (or all of them, for a model
  served as named tensors only) converted whole (service/serving/backends/signature_onnx.py); where it
  stays on TensorFlow, the signatures' functions run as saved.
- a frozen GraphDef with backend `tensorflow`, or one whose input is `encoded` (JPEG bytes in a string
  tensor, which ONNX has no decoder for): TensorFlow.
- a frozen GraphDef with backend `auto` (the default) or `onnxruntime`: converted to ONNX with tf2onnx
  (cached by content, service/serving/backends/onnx_conversion.py) and verified against TensorFlow on the
  check inputs (the warm-up input and a few seeded random ones); ONNX Runtime serves it only when the
  largest difference is within `onnx_tolerance`. Otherwise `auto` serves it on TensorFlow and says why
  (status and the log line `onnx_fallback`), and `onnxruntime` fails the load with that reason.

A servable is created on a loader thread; the verification runs there too, before it is offered. Once
offered, it runs only on the runtime's inference thread (service/serving/runtime.py). What every
servable offers is declared in service/serving/servable.py, which the backends implement.
"""

from __future__ import annotations

import numpy as np
import structlog

from service.classify.preprocess import prepare
from service.serving.repository import ModelConfigError, ModelSpec
from service.serving.servable import LoadOptions, Servable, check_rows
from service.serving.tensor_call import TensorCall, callable_signatures, example_inputs

log = structlog.get_logger("pinpoint.loader")


def load_servable(spec: ModelSpec, options: LoadOptions) -> Servable:
    """The servable for this version on the backend its model.toml or the settings choose."""
    if spec.is_onnx:
        from service.serving.backends import onnx_runtime

        return onnx_runtime.load(spec, spec.graph_path, options.intra_op_threads, str(spec.graph_path),
                                 reason="model.onnx, run as exported")
    if spec.is_saved_model:
        return _saved_model(spec, options)
    chosen = spec.backend or options.backend
    where = "model.toml" if spec.backend else "the backend setting"
    graph = spec.graph_path.read_bytes()
    if spec.input.kind == "encoded":
        return _tensorflow(spec, graph, options, "an encoded input (JPEG bytes) runs on TensorFlow only")
    if chosen == "tensorflow":
        return _tensorflow(spec, graph, options, f"backend = tensorflow ({where})")
    from service.serving.backends import onnx_conversion

    try:
        return onnx_conversion.load_verified(spec, graph, options, check_rows(spec))
    except onnx_conversion.Unverified as refusal:
        if chosen == "onnxruntime":
            raise ModelConfigError(f"backend = onnxruntime ({where}), but {refusal}") from None
        log.warning("onnx_fallback", servable=spec.key, reason=str(refusal))
        return _tensorflow(spec, graph, options, f"auto fell back to TensorFlow: {refusal}")


def needs_tensorflow(spec: ModelSpec, options: LoadOptions) -> bool:
    """Whether loading this version imports TensorFlow (load_servable's choices, without loading): a
    command imports it up front then, with its C++ notices kept out of the output (service/quiet.py)."""
    if spec.is_onnx:
        return False
    if spec.is_saved_model or spec.input.kind == "encoded" or (spec.backend or options.backend) == "tensorflow":
        return True
    from service.serving.backends import onnx_conversion

    return not onnx_conversion.verified_in_cache(spec, spec.graph_path.read_bytes(), options, check_rows(spec))


def _saved_model(spec: ModelSpec, options: LoadOptions) -> Servable:
    """A SavedModel: its signatures run by TensorFlow as saved, or (backend auto or onnxruntime) each
    converted by tf2onnx and verified against TensorFlow: the served signature of a model that takes
    one crop frozen, exactly as a frozen graph is; its other signatures, or every signature of a model
    served as named tensors only, whole (service/serving/backends/signature_onnx.py)."""
    from service.serving.backends import saved_model

    chosen = spec.backend or options.backend
    where = "model.toml" if spec.backend else "the backend setting"
    signature = f"signature {spec.signature_name!r}"

    def tensorflow(reason: str):
        return saved_model.load(spec, options.intra_op_threads, options.inter_op_threads,
                                reason=f"a SavedModel ({signature}) run by TensorFlow: {reason}")

    if chosen == "tensorflow":
        return tensorflow(f"backend = tensorflow ({where})")
    from service.serving import savedmodel
    from service.serving.backends import onnx_conversion, signature_onnx

    named = [name for name in callable_signatures(spec.signatures)
             if spec.tensors_only or name != spec.signature_name]
    rows, reasons = None, []
    try:
        if not spec.tensors_only:
            view = savedmodel.frozen_view(spec)
            rows = onnx_conversion.load_verified(view, lambda: saved_model.frozen_graph(spec), options,
                                                 check_rows(view), identity=savedmodel.identity(spec))
            rows.spec = spec  # the version as the repository describes it (its aliases, its signatures)
            reasons.append(f"a SavedModel ({signature}) frozen and {rows.reason}")
        sessions = {}
        if named:
            sessions, converted = signature_onnx.load_verified(spec, named, options)
            reasons.append(converted if rows is not None else f"a SavedModel: {converted}")
    except onnx_conversion.Unverified as refusal:
        if rows is not None:
            rows.close()
        if chosen == "onnxruntime":
            raise ModelConfigError(f"backend = onnxruntime ({where}), but {refusal}") from None
        log.warning("onnx_fallback", servable=spec.key, reason=str(refusal))
        return tensorflow(f"auto fell back to TensorFlow: {refusal}")
    return signature_onnx.SavedModelOnnx(spec, rows, sessions, "; ".join(reasons))


def _tensorflow(spec: ModelSpec, graph: bytes, options: LoadOptions, reason: str) -> Servable:
    from service.serving.backends import tensorflow_graph

    return tensorflow_graph.load(spec, graph, options.intra_op_threads, options.inter_op_threads, reason)


def warm_up_rows(spec: ModelSpec) -> np.ndarray | TensorCall:
    """One mid-grey crop, prepared as a request's would be: what warm-up runs (for a model served as
    named tensors only, zeros for each input of its served signature)."""
    if spec.tensors_only:
        return TensorCall(spec.signature_name, example_inputs(spec.signature, 1))
    i = spec.input
    return prepare(i, np.full((1, i.height, i.width, i.channels), 128, np.uint8))
