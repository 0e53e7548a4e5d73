"""A call with named tensors: one request's inputs for one signature of a SavedModel version, as the
runtime carries it to the servable and the worker hop to the model runner.

A SavedModel served as it is may take several named inputs and give several named outputs (a Keras
functional model's `a` and `b` -> `sum` and `prob`), and any of its signatures may be asked for. Such a
call runs as one model run of its own (as TF Serving runs Predict without --enable_batching): its inputs
are not concatenated with other requests'. A model with one input keeps the batched path of rows
(service/serving/servable.py). What the protocols check before a call is made (names, dtypes, shapes,
batch sizes) is service/protocols/named_tensors.py; this module knows no protocol and no backend.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from service.serving.savedmodel import SignatureInfo


@dataclasses.dataclass(frozen=True)
class TensorCall:
    signature: str  # the signature's key ("serving_default", "probabilities")
    inputs: dict[str, np.ndarray]  # alias -> tensor, every input of the signature
    outputs: tuple[str, ...] = ()  # the aliases asked for; empty: all of them

    def __len__(self) -> int:
        """The examples it carries, as the runtime counts a batch's crops: the inputs' first dim."""
        return max((len(value) if value.ndim else 1 for value in self.inputs.values()), default=1)


def callable_signatures(signatures) -> dict[str, SignatureInfo]:
    """The signatures a request may name: those with inputs and outputs (a SavedModel's
    __saved_model_init_op, an op with no tensors, is listed by /metadata but is not a function)."""
    return {name: info for name, info in signatures if info.inputs and info.outputs
            and all(t.dtype for t in (*info.inputs, *info.outputs))}


def example_inputs(info: SignatureInfo, batch: int, seed: int | None = None) -> dict[str, np.ndarray]:
    """Inputs of the signature's shapes and dtypes (unknown dims: `batch` first, 2 after): zeros for a
    warm-up, or seeded random values a converted signature is verified on."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for tensor in info.inputs:
        dims = tensor.shape if tensor.shape is not None else (-1,)
        shape = tuple((batch if i == 0 else 2) if d < 0 else d for i, d in enumerate(dims))
        dtype = np.dtype(tensor.dtype)
        if seed is None:
            inputs[tensor.key] = np.zeros(shape, dtype) if dtype.kind != "O" else np.full(shape, b"", object)
        elif dtype.kind == "f":
            inputs[tensor.key] = rng.uniform(-1, 1, shape).astype(dtype)
        elif dtype.kind in "iu":
            inputs[tensor.key] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[tensor.key] = rng.integers(0, 2, shape).astype(bool)
        else:
            inputs[tensor.key] = np.full(shape, b"", object)
    return inputs
