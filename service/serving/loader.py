"""Model files -> Servable: one version of one model, ready for the inference thread.

Which backend executes it (docs/models.md, "Backends"), chosen per version on its loader thread:
- `model.onnx`: ONNX Runtime, as exported. TensorFlow is not imported for it.
- a SavedModel directory (saved_model.pb + variables/): as a frozen graph, its served signature frozen
  first (service/serving/backends/saved_model.py); where it stays on TensorFlow, the signature's function runs
  as saved.
- a frozen GraphDef with backend `tensorflow`, or one whose input is `encoded` (JPEG bytes in a string
  tensor, which ONNX has no decoder for): TensorFlow.
- a frozen GraphDef with backend `auto` (the default) or `onnxruntime`: converted to ONNX with tf2onnx
  (cached by content, service/serving/backends/onnx_conversion.py) and verified against TensorFlow on the
  check inputs (the warm-up input and a few seeded random ones); ONNX Runtime serves it only when the
  largest difference is within `onnx_tolerance`. Otherwise `auto` serves it on TensorFlow and says why
  (status and the log line `onnx_fallback`), and `onnxruntime` fails the load with that reason.

A servable is created on a loader thread; the verification runs there too, before it is offered. Once
offered, it runs only on the runtime's inference thread (service/serving/runtime.py). Every servable has
`spec`, `key`, `backend`, `reason` (why that backend), `run(rows)` and `close()`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import structlog

from service.classify.preprocess import prepare
from service.serving.repository import ModelSpec

log = structlog.get_logger("pinpoint.loader")
CHECK_ROWS = 8  # the warm-up input, 3 flat colours and 4 of noise


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    intra_op_threads: int = 2
    inter_op_threads: int = 1
    backend: str = "auto"  # for versions whose model.toml names none
    onnx_tolerance: float = 1e-4
    onnx_cache: Path | None = None  # None: convert at every load


def load_servable(spec: ModelSpec, options: LoadOptions):
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
            from service.serving.repository import ModelConfigError

            raise ModelConfigError(f"backend = onnxruntime ({where}), but {refusal}") from None
        log.warning("onnx_fallback", servable=spec.key, reason=str(refusal))
        return _tensorflow(spec, graph, options, f"auto fell back to TensorFlow: {refusal}")


def _saved_model(spec: ModelSpec, options: LoadOptions):
    """A SavedModel: its signature run by TensorFlow as saved, or (backend auto or onnxruntime) frozen,
    converted by tf2onnx and verified against TensorFlow exactly as a frozen graph is."""
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
    from service.serving.backends import onnx_conversion

    view = savedmodel.frozen_view(spec)
    try:
        servable = onnx_conversion.load_verified(view, lambda: frozen_graph(spec), options, check_rows(view),
                                                 identity=savedmodel.identity(spec))
    except onnx_conversion.Unverified as refusal:
        if chosen == "onnxruntime":
            from service.serving.repository import ModelConfigError

            raise ModelConfigError(f"backend = onnxruntime ({where}), but {refusal}") from None
        log.warning("onnx_fallback", servable=spec.key, reason=str(refusal))
        return tensorflow(f"auto fell back to TensorFlow: {refusal}")
    servable.spec = spec  # the version as the repository describes it (its aliases, its signatures)
    servable.reason = f"a SavedModel ({signature}) frozen and {servable.reason}"
    return servable


def frozen_graph(spec: ModelSpec) -> bytes:
    """A SavedModel version's served signature frozen (made only when the ONNX cache lacks its
    conversion or TensorFlow's answers: a warm cache loads it without TensorFlow)."""
    from service.tools import convert
    from service.serving.backends import onnx_conversion, saved_model

    try:
        return saved_model.freeze(spec)
    except convert.ConvertError as error:
        raise onnx_conversion.Unverified(f"it cannot be frozen for tf2onnx ({error})") from None


def _tensorflow(spec: ModelSpec, graph: bytes, options: LoadOptions, reason: str):
    from service.serving.backends import tensorflow_graph

    return tensorflow_graph.load(spec, graph, options.intra_op_threads, options.inter_op_threads, reason)


def warm_up_rows(spec: ModelSpec) -> np.ndarray:
    """One mid-grey crop, prepared as a request's would be: what warm-up runs."""
    i = spec.input
    return prepare(i, np.full((1, i.height, i.width, i.channels), 128, np.uint8))


def check_rows(spec: ModelSpec, seed: int = 0) -> np.ndarray:
    """What a converted model is verified on: the warm-up input, then seeded random crops (flat colours,
    as the demo models see them, and noise, which reaches every weight), prepared as requests are."""
    i = spec.input
    shape = (i.height, i.width, i.channels)
    rng = np.random.default_rng(seed)
    crops = [np.full(shape, 128, np.uint8)]
    crops += [np.broadcast_to(rng.integers(0, 256, i.channels, dtype=np.uint8), shape) for _ in range(3)]
    crops += [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(CHECK_ROWS - 4)]
    return prepare(i, np.stack(crops))


def row_shape(spec: ModelSpec) -> list[int]:
    """One input row's shape as model.toml describes it (image and flat kinds; no batch axis)."""
    i = spec.input
    if i.kind == "flat":
        return [i.height * i.width * i.channels]
    return [i.channels, i.height, i.width] if i.layout == "nchw" else [i.height, i.width, i.channels]


def output_rows(output: np.ndarray, count: int) -> np.ndarray:
    """Model output -> [count, classes] floats, accepting graphs that drop the batch axis."""
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 1:
        output = output[np.newaxis, :]
    output = output.reshape(output.shape[0], -1)
    if output.shape[0] != count:
        raise ValueError(f"the model returned {output.shape[0]} rows for {count} inputs")
    return output
