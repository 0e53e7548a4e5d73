"""A SavedModel's signatures on ONNX Runtime, each converted whole: tf2onnx's from_function on the
signature's function, every input and output keeping its alias ("a", "b" -> "sum", "prob").

What the frozen-graph path (service/serving/backends/onnx_conversion.py) does for one input and one
output, done per signature for named tensors: converted on the loader thread, cached by content in the
`onnx_cache` directory (<key>.onnx, <key>.refused, and TensorFlow's answers on the check inputs as
<key>.<check>.npz, so a warm cache verifies without importing TensorFlow), then verified against
TensorFlow on seeded check inputs at a batch of 4 and of 1. A signature tf2onnx cannot convert, or whose
answers differ by more than `onnx_tolerance`, raises Unverified: `auto` then serves the whole version on
TensorFlow (service/serving/loader.py).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import structlog

from service.errors import first_line
from service.serving import savedmodel
from service.serving.backends import onnx_conversion, onnx_runtime
from service.serving.backends.onnx_conversion import OPSET, Cache, Unverified
from service.serving.repository import ModelSpec
from service.serving.tensor_call import TensorCall, example_inputs

log = structlog.get_logger("pinpoint.onnx")
CHECK_BATCH = 4


class SavedModelOnnx:
    """A SavedModel version on ONNX Runtime: its served signature's rows (the frozen-graph servable,
    for a model that takes one crop) and its signatures' named tensors (a session per signature)."""

    backend = onnx_runtime.BACKEND
    batched = True

    def __init__(self, spec: ModelSpec, rows, sessions: dict, reason: str):
        self.spec, self.rows, self.sessions, self.reason = spec, rows, sessions, reason

    @property
    def key(self) -> str:
        return self.spec.key

    def run(self, rows: np.ndarray) -> np.ndarray:
        return self.rows.run(rows)

    def run_tensors(self, call: TensorCall) -> dict[str, np.ndarray]:
        return _run(self.sessions[call.signature], call)

    def close(self) -> None:
        if self.rows is not None:
            self.rows.close()
        self.sessions = {}  # ONNX Runtime frees a session with its last reference


def _run(session, call: TensorCall) -> dict[str, np.ndarray]:
    names = list(call.outputs) or [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, call.inputs)))


def load_verified(spec: ModelSpec, names: list[str], options) -> tuple[dict, str]:
    """A verified ONNX Runtime session per signature named; and what was done, for the status."""
    signatures = dict(spec.signatures)
    cache = Cache(options.onnx_cache)
    tensorflow = _TensorFlow(spec)
    sessions, largest, cached_all = {}, 0.0, True
    for name in names:
        key = _key(spec, name)
        refused = cache.read(f"{key}.refused")
        if refused is not None:
            raise Unverified(f"tf2onnx cannot convert signature {name!r}: "
                             f"{refused.decode(errors='replace')} (remembered in the cache)")
        model = cache.read(f"{key}.onnx")
        cached_all &= model is not None
        if model is None:
            model = _convert(spec, name, tensorflow, cache, key)
        try:
            session = onnx_runtime.open_session(model, options.intra_op_threads)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's own error classes
            raise Unverified(f"ONNX Runtime cannot run signature {name!r} converted ({first_line(error)})") from None
        largest = max(largest, _verify(spec, name, signatures[name], session, tensorflow, cache, key, options))
        sessions[name] = session
    from_cache = ", from the cache" if cached_all else ""
    reason = (f"signature{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))} converted by tf2onnx "
              f"{onnx_conversion.tf2onnx_version()} (opset {OPSET}{from_cache}), verified against TensorFlow "
              f"on {CHECK_BATCH} inputs: largest difference {largest:.2g} (tolerance {options.onnx_tolerance:g})")
    log.info("onnx_signatures_verified", servable=spec.key, signatures=names, difference=largest)
    return sessions, reason


def _key(spec: ModelSpec, name: str) -> str:
    digest = hashlib.sha256(savedmodel.identity(spec))
    digest.update(f"\0signature {name}\0tf2onnx {onnx_conversion.tf2onnx_version()}\0opset {OPSET}".encode())
    return digest.hexdigest()[:40]


class _TensorFlow:
    """The SavedModel restored by TensorFlow on this loader thread, once, only if a conversion or a
    reference answer is not in the cache."""

    def __init__(self, spec: ModelSpec):
        self.spec, self.loaded = spec, None

    def signature(self, name: str):
        if self.loaded is None:
            from service.serving.backends import saved_model

            self.loaded = saved_model.restore(self.spec)
        return self.loaded.signatures[name]


def _convert(spec: ModelSpec, name: str, tensorflow: _TensorFlow, cache: Cache, key: str) -> bytes:
    function = tensorflow.signature(name)
    with onnx_conversion.conversion(spec, signature=name) as (tf, tf2onnx):
        feeds = function.structured_input_signature[1]
        aliases = sorted(feeds)
        specs = [tf.TensorSpec(feeds[alias].shape, feeds[alias].dtype, name=alias) for alias in aliases]

        @tf.function(input_signature=specs)
        def whole(*tensors):  # positional tensors named by their aliases: tf2onnx keeps the names
            return function(**dict(zip(aliases, tensors)))

        try:
            proto, _ = tf2onnx.convert.from_function(whole, input_signature=specs, opset=OPSET)
        except Exception as error:  # noqa: BLE001 - tf2onnx raises whatever its handlers raise
            reason = first_line(error)
            cache.write(f"{key}.refused", reason.encode())
            raise Unverified(f"tf2onnx cannot convert signature {name!r}: {reason}") from None
    return onnx_conversion.keep_converted(proto, cache, key, f"signature {name!r}")


def _verify(spec: ModelSpec, name: str, info, session, tensorflow: _TensorFlow, cache: Cache, key: str,
            options) -> float:
    """The largest difference from TensorFlow's answers, at a batch of CHECK_BATCH and of 1."""
    inputs = example_inputs(info, CHECK_BATCH, seed=0)
    call = TensorCall(name, inputs)
    try:
        reference = _reference(call, tensorflow, cache, key)
    except Exception as error:  # noqa: BLE001 - TensorFlow's own errors: the check inputs do not fit it
        raise Unverified(f"TensorFlow cannot run signature {name!r} on the check inputs "
                         f"({first_line(error, 200)})") from None
    try:
        batch = _run(session, call)
        single = _run(session, TensorCall(name, {alias: value[:1] for alias, value in inputs.items()}))
    except Exception as error:  # noqa: BLE001 - whatever ONNX Runtime raises on the check inputs
        raise Unverified(f"ONNX Runtime failed on signature {name!r}'s check inputs "
                         f"({first_line(error, 200)})") from None
    largest = 0.0
    for alias, want in reference.items():
        have = batch.get(alias)
        if have is None or have.shape != want.shape:
            raise Unverified(f"signature {name!r}: the converted output {alias!r} is "
                             f"{None if have is None else have.shape}, TensorFlow's {want.shape}")
        largest = max(largest, _difference(have, want), _difference(single[alias], want[:1]))
    if not largest <= options.onnx_tolerance:  # NaN included
        raise Unverified(f"ONNX Runtime's answers for signature {name!r} differ from TensorFlow's by {largest:.3g} "
                         f"(tolerance {options.onnx_tolerance:g}) on {CHECK_BATCH} check inputs")
    return largest


def _difference(have: np.ndarray, want: np.ndarray) -> float:
    if want.dtype.kind in "fc":
        return onnx_conversion.largest(have, want)
    return 0.0 if np.array_equal(have, want) else float("inf")


def _reference(call: TensorCall, tensorflow: _TensorFlow, cache: Cache, key: str) -> dict[str, np.ndarray]:
    """TensorFlow's outputs on the check inputs: from the cache, else computed here and stored."""
    digest = hashlib.sha256(onnx_conversion.tensorflow_version().encode())
    for alias, value in sorted(call.inputs.items()):
        digest.update(f"\0{alias}\0{value.dtype}\0{value.shape}\0".encode() + value.tobytes())
    name = f"{key}.{digest.hexdigest()[:16]}.npz"
    stored = cache.read(name)
    if stored is not None:
        try:
            with np.load(io.BytesIO(stored), allow_pickle=False) as archive:
                return {alias: archive[alias] for alias in archive.files}
        except (ValueError, OSError, KeyError):
            pass  # damaged: computed again and overwritten below
    from service.serving.backends import saved_model

    reference = saved_model.call_signature(tensorflow.signature(call.signature), call)
    buffer = io.BytesIO()
    np.savez(buffer, **reference)
    cache.write(name, buffer.getvalue())
    return reference
