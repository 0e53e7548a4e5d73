"""The servable: one version of one model, loaded and ready to run, whatever executes it.

Every backend (service/serving/backends/) implements `Servable`; the loader (service/serving/loader.py)
chooses the backend and returns one; the runtime (service/serving/runtime.py) warms it up and runs it.
Backends depend on this module and never on the loader, so choosing a backend and being one stay apart.
Also here: what a backend is loaded with (LoadOptions), the shape of the rows it is fed and returns, and
the inputs a converted model is checked on before it may serve.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import numpy as np

from service.classify.preprocess import prepare
from service.serving.repository import ModelSpec

CHECK_ROWS = 8  # the warm-up input, 3 flat colours and 4 of noise


class Servable(Protocol):
    """Created on a loader thread; once offered, run and closed only on the runtime's inference thread."""

    spec: ModelSpec  # the version as the repository describes it
    backend: str  # what runs it: "tensorflow" or "onnxruntime"
    reason: str  # why that backend (verified conversion, fallback and its cause, ...), shown in status

    @property
    def key(self) -> str:
        """Its name in the runtime ("color@2")."""
        return self.spec.key

    def run(self, rows: np.ndarray) -> np.ndarray:
        """[N, ...] prepared inputs -> [N, classes] float32 outputs."""
        ...

    # A SavedModel version's servable also runs any of its signatures on named tensors:
    # run_tensors(call: TensorCall) -> {alias: array} (service/serving/tensor_call.py), one call per run.

    def close(self) -> None:
        """Let go of the backend's session, graph or function."""
        ...


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    intra_op_threads: int = 2
    inter_op_threads: int = 1
    backend: str = "auto"  # for versions whose model.toml names none
    onnx_tolerance: float = 1e-4
    onnx_cache: Path | None = None  # None: convert at every load

    @classmethod
    def of(cls, settings, **instead) -> LoadOptions:
        """The options `settings` give (its fields of the same names), with `instead` in place of some."""
        return cls(**{field.name: getattr(settings, field.name) for field in dataclasses.fields(cls)} | instead)


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
