"""Running a request's models: the one way every route reaches them.

/v1/classify (service/classify/pipeline.py), every TF Serving route (service/protocols/tfserving/calls.py)
and the Open Inference Protocol (service/protocols/oip.py) go through `run`:

    lease the versions the request names    none of them unloads until the answer is in
    -> work(models), the caller's part       inputs made from each version's spec (crop, layout, signature)
       -> models.infer(feeds)                 the runtime runs them, batched, by the deadline (partial answers)
          or models.run(version, rows)        one version: its rows, or its failure raised (a TensorCall,
                                              a SavedModel signature's named tensors: its named outputs)
    -> probabilities(rows, softmax)          the scores a client is answered (:predict answers raw rows)

The deadline starts with the attempt, so it covers the caller's decoding and cropping too. With a model
runner in another process (API workers) the worker resolves versions from its copy of the runner's
state, which can be a moment old after a swap: the runner then answers StaleVersions, and `run` looks
again and goes once more, with a new deadline.

It knows no protocol and no TensorFlow: the edges say what goes in and how the answer is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from service.errors import BadRequest, PinpointError, Timeout
from service.serving import tensor_call
from service.serving.manager import Manager, ModelRef, StaleVersions, Version
from service.serving.runtime import Outcome

T = TypeVar("T")

# What the runtime writes for a version the request's deadline left behind (service/serving/runtime.py).
_MISSED_DEADLINE = "deadline"


class ModelFailed(PinpointError):
    """A version ran and failed (its backend raised): the server's fault, not the request's."""

    code = "internal_error"


class Models:
    """The versions one attempt holds, and the way to run them before the attempt's deadline."""

    def __init__(self, manager: Manager, versions: list[Version], errors: dict[str, str], deadline: float):
        self.manager, self.versions, self.deadline = manager, versions, deadline
        self.errors = errors  # model -> why the version asked for could not be had (partial leases)

    @property
    def version(self) -> Version:
        """The one version a single-model request holds."""
        return self.versions[0]

    def infer(self, feeds: dict[str, np.ndarray]) -> Outcome:
        """Run every version on its rows (version key -> rows), batched with other requests; what a
        version could not give by the deadline is in the outcome's errors."""
        return self.manager.runtime.infer(feeds, self.deadline)

    def run(self, version: Version, rows) -> np.ndarray:
        """One version's raw output rows for these input rows, or its failure raised (Timeout when the
        deadline left it behind; BadRequest when a signature could not run on a TensorCall's tensors;
        else ModelFailed)."""
        outcome = self.infer({version.key: rows})
        if version.key in outcome.errors:
            error = outcome.errors[version.key]
            if error.startswith(tensor_call.REFUSED):
                raise BadRequest(error)
            raise (Timeout if _MISSED_DEADLINE in error else ModelFailed)(error)
        return outcome.outputs[version.key]


def run(manager: Manager, refs: Sequence[ModelRef], work: Callable[[Models], T], deadline_ms: float, *,
        partial: bool = False) -> T:
    """Lease the versions `refs` name (every served model's default when empty), call `work` with them
    held, and answer what it returns. `partial`: a reference that cannot be had beside one that can is
    left in `models.errors` instead of failing the request (service/serving/manager.py, acquire)."""
    try:
        return _attempt(manager, refs, work, deadline_ms, partial)
    except StaleVersions:
        # Only with a model runner in another process: its state moved (a swap) since this worker last
        # looked. Look again and go once more; `work` starts over (an image is decoded from the cache
        # or again), since the version it gets may differ.
        manager.refresh()
        return _attempt(manager, refs, work, deadline_ms, partial)


def _attempt(manager: Manager, refs: Sequence[ModelRef], work: Callable[[Models], T], deadline_ms: float,
             partial: bool) -> T:
    deadline = time.monotonic() + deadline_ms / 1000
    with manager.acquire(list(refs), partial=partial) as lease:
        return work(Models(manager, lease.versions, dict(lease.errors), deadline))


def probabilities(rows: np.ndarray, softmax: bool) -> np.ndarray:
    """A model's output rows -> the scores answered: for a model that gives logits, their softmax, in
    float64 with each row's largest subtracted first (large logits do not overflow); then clipped to 0..1
    with nan as 0, so a row of infinities or nans never answers a score outside a probability's range.
    The browser's copy: static/inbrowser/preprocess.js."""
    scores = np.asarray(rows).astype(np.float64)
    if softmax:
        with np.errstate(invalid="ignore"):  # infinity minus infinity: a nan, made 0 below
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
    return np.nan_to_num(np.clip(scores, 0.0, 1.0))


def label_mismatch(version: Version, rows: np.ndarray) -> str:
    """Why a version's rows cannot be read as its labels' scores, or "" when they can."""
    labels = len(version.spec.labels)
    if rows.shape[1] != labels:
        return f"the model gave {rows.shape[1]} scores for {labels} labels; its labels file does not match the graph"
    return ""
