"""A call with named tensors: one request's inputs for one signature of a SavedModel version, as the
runtime carries it to the servable and the worker hop to the model runner.

A SavedModel served as it is may take several named inputs and give several named outputs (a Keras
functional model's `a` and `b` -> `sum` and `prob`), and any of its signatures may be asked for. Calls
waiting together share a model run when they can (`groups`): same signature, same outputs asked for,
each input of the same dtype and per-example shape, and every input and output of the signature
batched along its first axis (`batched`, as TF Serving's --enable_batching needs); their inputs are
concatenated (`merge`) and the outputs cut back per call (`split`). Any other call runs alone. A model
with one input keeps the batched path of rows (service/serving/servable.py). What the protocols check
before a call is made (names, dtypes, shapes, batch sizes) is service/protocols/named_tensors.py; this
module knows no protocol and no backend.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from service.serving.savedmodel import SignatureInfo

# How the runtime words a call the signature could not run on (service/serving/model_run.py answers it
# as the request's fault, as TF Serving answers the graph's INVALID_ARGUMENT).
REFUSED = "the model could not run on these inputs: "


@dataclasses.dataclass(frozen=True)
class TensorCall:
    signature: str  # the signature's key ("serving_default", "probabilities")
    inputs: dict[str, np.ndarray]  # alias -> tensor, every input of the signature
    outputs: tuple[str, ...] = ()  # the aliases asked for; empty: all of them
    batched: bool = False  # every input and output of the signature has the batch as its first axis

    def __len__(self) -> int:
        """The examples it carries, as the runtime counts a batch's crops: the inputs' first dim."""
        return max((len(value) if value.ndim else 1 for value in self.inputs.values()), default=1)


def groups(calls: list[TensorCall]) -> list[list[int]]:
    """The calls (by index) that may share one run; a call that cannot share runs alone."""
    alone, shared = [], {}
    for index, call in enumerate(calls):
        if not call.batched:
            alone.append([index])
            continue
        key = (call.signature, call.outputs,
               tuple((alias, value.dtype.str, value.shape[1:]) for alias, value in sorted(call.inputs.items())))
        shared.setdefault(key, []).append(index)
    return alone + list(shared.values())


def merge(calls: list[TensorCall]) -> TensorCall:
    """One call of a group's examples, in order: each input concatenated along the batch axis."""
    if len(calls) == 1:
        return calls[0]
    first = calls[0]
    return dataclasses.replace(first, inputs={alias: np.concatenate([call.inputs[alias] for call in calls])
                                              for alias in first.inputs})


def split(outputs: dict[str, np.ndarray], sizes: list[int]) -> list[dict[str, np.ndarray]]:
    """A merged call's outputs cut back into each call's examples."""
    if len(sizes) == 1:
        return [outputs]
    for alias, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != sum(sizes):
            raise ValueError(f"output {alias!r} has {value.shape[0] if value.ndim else 'no'} rows "
                             f"for {sum(sizes)} examples")
    bounds = np.cumsum(sizes)[:-1]
    parts = {alias: np.split(value, bounds) for alias, value in outputs.items()}
    return [{alias: parts[alias][i] for alias in parts} for i in range(len(sizes))]


def callable_signatures(signatures) -> dict[str, SignatureInfo]:
    """The signatures a request may name: those with inputs and outputs (a SavedModel's
    __saved_model_init_op, an op with no tensors, is listed by /metadata but is not a function)."""
    return {name: info for name, info in signatures if info.inputs and info.outputs
            and all(t.dtype for t in (*info.inputs, *info.outputs))}


UNKNOWN_DIM = 32  # an example's size along a dimension the signature leaves open (an image's height ...)


def example_inputs(info: SignatureInfo, batch: int, seed: int | None = None) -> dict[str, np.ndarray]:
    """Inputs of the signature's shapes and dtypes (unknown dims: `batch` first, UNKNOWN_DIM after, the
    same for every input): zeros for a warm-up, or seeded random values a converted signature is
    verified on."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for tensor in info.inputs:
        dims = tensor.shape if tensor.shape is not None else (-1,)
        shape = tuple((batch if i == 0 else UNKNOWN_DIM) if d < 0 else d for i, d in enumerate(dims))
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
