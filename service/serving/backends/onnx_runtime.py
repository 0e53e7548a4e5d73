"""An ONNX model run by ONNX Runtime (CPU): a version's model.onnx, or a frozen graph converted by
service/serving/backends/onnx_conversion.py. One InferenceSession per servable.

The session is created on a loader thread and, once offered, run only on the inference thread (as
TensorFlow's sessions are): ONNX Runtime would allow more, but one thread running everything is what
keeps batching, deadlines and the CPU budget predictable.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.errors import first_line
from service.serving.repository import ModelConfigError, ModelSpec
from service.serving.servable import Servable, output_rows, row_shape

BACKEND = "onnxruntime"
DTYPES = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}


class Unreadable(ModelConfigError):
    """ONNX Runtime cannot open the file at all (as opposed to a model that does not fit model.toml)."""


class OnnxServable(Servable):
    backend = BACKEND

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, input_name: str, output_name: str,
                 batched: bool, reason: str = "", model: bytes | Path | None = None):
        self.spec, self.session, self.input_name, self.output_name = spec, session, input_name, output_name
        self.model = model  # what the session was opened on: the web copy (backends/web_export.py) is it
        self.batched = batched  # False for a model exported with a fixed batch of 1: one row per run
        self.reason = reason  # why ONNX Runtime runs it (shown in status)

    def run(self, rows: np.ndarray) -> np.ndarray:
        """[N, ...] inputs -> [N, classes] float32 outputs. Once offered: on the inference thread only."""
        if self.batched:
            return output_rows(self.session.run([self.output_name], {self.input_name: rows})[0], len(rows))
        return np.concatenate([output_rows(self.session.run([self.output_name], {self.input_name: rows[i:i + 1]})[0], 1)
                               for i in range(len(rows))])

    def close(self) -> None:
        self.session = None  # ONNX Runtime frees a session with its last reference


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads  # 0: ONNX Runtime's choice (one per core)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are about nodes it placed, not ours
    # Its pool's threads would otherwise spin-wait after each run, burning the cores that request threads
    # decode and crop on; measured on 2 shared cores, no run got slower without it (docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_session(model: bytes | str, intra_op_threads: int) -> ort.InferenceSession:
    """A session on the CPU with Pinpoint's options: every ONNX model served is opened here."""
    return ort.InferenceSession(model, session_options(intra_op_threads), providers=["CPUExecutionProvider"])


def load(spec: ModelSpec, model: bytes | Path, intra_op_threads: int, source: str,
         reason: str = "") -> OnnxServable:
    """Open a session on `model` (bytes or a file; `source` names it in errors) and check that its
    input and output fit model.toml, as the TensorFlow loader checks a graph's tensors."""
    opened_on = str(model) if isinstance(model, Path) else model  # ONNX Runtime takes a path as a str
    try:
        session = open_session(opened_on, intra_op_threads)
    except Exception as error:  # ONNX Runtime's Fail, InvalidGraph, InvalidProtobuf, NoSuchFile ...
        raise Unreadable(f"{source}: ONNX Runtime cannot load it ({first_line(error)})") from None
    where = f"{spec.directory}/model.toml"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    feed = _find(inputs, spec.input.tensor)
    if feed is None:
        raise ModelConfigError(f"{where}: input.tensor {spec.input.tensor!r} is not an input of {source}; "
                               f"its inputs: {_describe(inputs)}")
    others = [i for i in inputs if i.name != feed.name]
    if others:
        raise ModelConfigError(f"{source} has inputs besides {feed.name!r} ({_describe(others)}); "
                               "Pinpoint feeds one")
    fetch = _find(outputs, spec.output_tensor)
    if fetch is None:
        raise ModelConfigError(f"{where}: output.tensor {spec.output_tensor!r} is not an output of {source}; "
                               f"its outputs: {_describe(outputs)}")
    if feed.type != DTYPES[spec.input.dtype]:
        raise ModelConfigError(f"{spec.name}: input {feed.name!r} is {feed.type} but model.toml says "
                               f"{spec.input.dtype}")
    batched = _check_shape(spec, feed, source)
    classes = fetch.shape[-1] if fetch.shape else None
    if isinstance(classes, int) and classes != len(spec.labels):
        raise ModelConfigError(
            f"{spec.name}: the output has {classes} classes but the labels file has {len(spec.labels)} lines")
    if intra_op_threads != 1 and _quick(spec, session, feed.name):
        session = open_session(opened_on, 1)
    return OnnxServable(spec, session, feed.name, fetch.name, batched, reason, model)


# A model whose one-row run takes less than this gets one intra-op thread whatever intra_op_threads
# says: waking a second thread for each of its few small operators costs more CPU than it saves, and
# no time (the demo colour and pattern models: 0.38 / 0.28 ms a row on one thread; on two, the same
# time or more at 11-60% more CPU, batch 8 to 1; the topic network, ~10 ms a row, runs faster on two).
QUICK_RUN_MS = 1.5


def _quick(spec: ModelSpec, session: ort.InferenceSession, input_name: str) -> bool:
    """Whether a one-row run of zeros takes under QUICK_RUN_MS (the best of three, after one to warm)."""
    row = np.zeros([1, *row_shape(spec)], dtype=np.dtype(spec.input.dtype))
    best = float("inf")
    try:
        for attempt in range(4):
            started = time.perf_counter()
            session.run(None, {input_name: row})
            if attempt:
                best = min(best, time.perf_counter() - started)
    except Exception:  # noqa: BLE001 - a model that cannot run zeros is checked (and refused) later, as before
        return False
    return best * 1000 < QUICK_RUN_MS


def _find(nodes, name: str):
    """model.toml names tensors TensorFlow's way ("input:0"); an exported ONNX model may say "input"."""
    wanted = {name, name.removesuffix(":0"), name if ":" in name else f"{name}:0"}
    return next((node for node in nodes if node.name in wanted), None)


def _check_shape(spec: ModelSpec, feed, source: str) -> bool:
    """True when the model takes any batch size; False when it was exported with a batch of 1."""
    shape, expected = feed.shape, row_shape(spec)
    if shape is None or len(shape) == 0:
        raise ModelConfigError(f"{spec.name}: input {feed.name!r} of {source} has no shape; Pinpoint feeds "
                               f"[batch, {', '.join(map(str, expected))}]")
    if len(shape) != len(expected) + 1 or any(isinstance(have, int) and have != want
                                               for have, want in zip(shape[1:], expected)):
        layout = f" (layout {spec.input.layout})" if spec.input.kind == "image" else ""
        raise ModelConfigError(f"{spec.name}: input {feed.name!r} of {source} is {_shape(shape)} but model.toml "
                               f"describes [batch, {', '.join(map(str, expected))}]{layout}")
    batch = shape[0]
    if isinstance(batch, int) and batch != 1:
        raise ModelConfigError(f"{spec.name}: input {feed.name!r} of {source} takes exactly {batch} rows; export it "
                               "with a dynamic batch axis (torch.onnx.export(..., dynamic_axes=...))")
    return not isinstance(batch, int)


def _describe(nodes) -> str:
    return ", ".join(f"{node.name} {node.type} {_shape(node.shape)}" for node in nodes) or "none"


def _shape(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in (shape or [])) + "]"

