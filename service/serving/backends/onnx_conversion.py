"""A frozen GraphDef -> ONNX (tf2onnx, in-process, on a loader thread), cached by content and verified
against TensorFlow before it may serve.

The cache directory (the `onnx_cache` setting) holds, per conversion key (a SHA-256 of the graph's
bytes, the input and output tensor names, tf2onnx's version and the opset):
- `<key>.onnx`: the converted model;
- `<key>.refused`: why tf2onnx could not convert it, so a restart does not try again;
- `<key>.<check>.npy`: TensorFlow's outputs on the check inputs (<check>: a hash of those inputs and
  TensorFlow's version). The converted model runs on the check inputs at every load and is compared
  with these, so a restart or a replica with a warm cache verifies without importing TensorFlow.
Each file is written under a temporary name and renamed into place: replicas sharing the directory
never read half a file. A cache that cannot be written is only slower (each load converts again).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from importlib import metadata
from pathlib import Path

import numpy as np
import structlog

from service.errors import first_line
from service.serving.repository import ModelSpec

log = structlog.get_logger("pinpoint.onnx")
OPSET = 17  # ONNX Runtime 1.16+ runs it; tf2onnx 1.17 converts to it (its highest is 18)
converting = threading.Lock()  # one conversion at a time: tf2onnx and grappler want the cores anyway
conversions = 0  # tf2onnx runs in this process (tests check that a warm cache makes none)


class Unverified(Exception):
    """The converted model may not serve: tf2onnx could not convert the graph, ONNX Runtime could not
    run the result, or its answers differ from TensorFlow's by more than the tolerance."""


def load_verified(spec: ModelSpec, graph, options, rows: np.ndarray, use_cached_model: bool = True,
                  identity: bytes | None = None):
    """An OnnxServable of the converted graph whose answers on `rows` match TensorFlow's.

    graph: the GraphDef's bytes, or a callable that makes them (a SavedModel's signature, frozen), called
    only when the cache lacks the conversion or TensorFlow's answers; identity: what the cache key hashes
    instead of the graph's bytes (a SavedModel's files: its frozen graph's bytes vary from freeze to freeze)."""
    from service.serving.backends import onnx_runtime

    if callable(graph) and not isinstance(graph, _Lazy):
        graph = _Lazy(graph)
    cache = Cache(options.onnx_cache)
    key = conversion_key(spec, _bytes(graph) if identity is None else identity)
    refused = cache.read(f"{key}.refused")
    if refused is not None:
        raise Unverified(f"tf2onnx cannot convert it: {refused.decode(errors='replace')} (remembered in the cache)")
    model, cached = cache.read(f"{key}.onnx") if use_cached_model else None, True
    if model is None:
        model, cached = _convert(spec, graph, cache, key), False
    source = f"{spec.graph_path.name} converted by tf2onnx"
    try:
        # A converted model that does not fit model.toml (labels, dtype) raises ModelConfigError here, as
        # TensorFlow would for the graph: the version fails, with no pointless fallback.
        servable = onnx_runtime.load(spec, model, options.intra_op_threads, source)
    except onnx_runtime.Unreadable as error:
        if cached:  # a damaged cache file: convert once more and overwrite it
            log.warning("onnx_cache_unreadable", servable=spec.key, file=f"{key}.onnx", error=str(error))
            return load_verified(spec, graph, options, rows, use_cached_model=False, identity=identity)
        raise Unverified(f"ONNX Runtime cannot run the converted model ({error})") from None
    try:
        reference = _reference(spec, graph, options, rows, cache, key)
        difference = _difference(servable, rows, reference)
    except Exception:
        servable.close()
        raise
    if not difference <= options.onnx_tolerance:  # NaN included
        servable.close()
        raise Unverified(f"ONNX Runtime's answers differ from TensorFlow's by {difference:.3g} "
                         f"(tolerance {options.onnx_tolerance:g}) on {len(rows)} check inputs")
    cache.write(_verdict_name(key, rows), repr(float(difference)).encode())  # what verified_in_cache reads
    from_cache = ", from the cache" if cached else ""
    servable.reason = (f"converted by tf2onnx {tf2onnx_version()} (opset {OPSET}{from_cache})"
                       f", verified against TensorFlow on {len(rows)} inputs: largest difference {difference:.2g}"
                       f" (tolerance {options.onnx_tolerance:g})")
    log.info("onnx_verified", servable=spec.key, cached=cached, difference=float(difference))
    return servable


class _Lazy:
    """Graph bytes made on first use, once."""

    def __init__(self, make):
        self.make, self.value = make, None

    def __call__(self) -> bytes:
        if self.value is None:
            self.value = self.make()
        return self.value


def _bytes(graph) -> bytes:
    return graph() if callable(graph) else graph


def conversion_key(spec: ModelSpec, graph: bytes) -> str:
    digest = hashlib.sha256(graph)
    digest.update(f"\0{spec.input.tensor}\0{spec.output_tensor}\0tf2onnx {tf2onnx_version()}\0opset {OPSET}".encode())
    return digest.hexdigest()[:40]


@contextlib.contextmanager
def conversion(spec: ModelSpec, **said):
    """One tf2onnx conversion at a time, counted and logged (`said`: more to log), with tf2onnx's and
    TensorFlow's chatter quieted; yields the two modules."""
    global conversions
    with converting:
        import logging

        import tensorflow as tf
        import tf2onnx

        logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # it reports each step at INFO
        tf.get_logger().setLevel(logging.ERROR)  # and TF its TF1-API deprecation notices
        conversions += 1
        log.info("onnx_converting", servable=spec.key, **said, tf2onnx=tf2onnx_version(), opset=OPSET)
        yield tf, tf2onnx


def _convert(spec: ModelSpec, graph: bytes, cache: Cache, key: str) -> bytes:
    from service.serving.backends.tensorflow_graph import parse_graph_def, tensor_name

    graph_def = parse_graph_def(spec, _bytes(graph))  # not a GraphDef: the version fails, it does not fall back
    with conversion(spec) as (tf, tf2onnx):
        try:
            with tf.Graph().as_default():
                proto, _ = tf2onnx.convert.from_graph_def(
                    graph_def, name=spec.key, input_names=[tensor_name(spec.input.tensor)],
                    output_names=[tensor_name(spec.output_tensor)], opset=OPSET)
        except Exception as error:  # tf2onnx raises whatever its handlers raise
            reason = first_line(error)
            cache.write(f"{key}.refused", reason.encode())
            raise Unverified(f"tf2onnx cannot convert it: {reason}") from None
    return keep_converted(proto, cache, key, "it")


def keep_converted(proto, cache: Cache, key: str, what: str) -> bytes:
    """tf2onnx's model, cached as `<key>.onnx`, once every op in it was converted; else the refusal
    cached as `<key>.refused` and raised (Unverified: "tf2onnx cannot convert <what>: ...")."""
    missing = unconverted_ops(proto)
    if missing:
        # tf2onnx leaves an op it has no handler for in the graph as it was; ONNX Runtime would refuse it.
        reason = f"no ONNX conversion for the op{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        cache.write(f"{key}.refused", reason.encode())
        raise Unverified(f"tf2onnx cannot convert {what}: {reason}")
    model = proto.SerializeToString()
    cache.write(f"{key}.onnx", model)
    return model


def unconverted_ops(proto) -> list[str]:
    import onnx

    known_domains = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
    return sorted({node.op_type for node in proto.graph.node
                   if node.domain not in known_domains or node.domain in ("", "ai.onnx")
                   and not onnx.defs.has(node.op_type, node.domain)})


def _reference(spec: ModelSpec, graph: bytes, options, rows: np.ndarray, cache: Cache, key: str) -> np.ndarray:
    """TensorFlow's outputs on the check inputs: from the cache, else run here (a session of its own on
    this loader thread, closed at once: this graph is not serving, so the inference thread's rule holds)."""
    name = _reference_name(key, rows)
    stored = cache.read(name)
    if stored is not None:
        try:
            return _load_npy(stored)
        except ValueError:
            pass  # damaged: computed again and overwritten below
    from service.serving.backends import tensorflow_graph

    servable = tensorflow_graph.load(spec, _bytes(graph), options.intra_op_threads, options.inter_op_threads)
    try:
        reference = servable.run(rows)
    finally:
        servable.close()
    cache.write(name, _npy(reference))
    return reference


def _reference_name(key: str, rows: np.ndarray) -> str:
    check = hashlib.sha256(rows.tobytes() + str(rows.shape).encode() + tensorflow_version().encode()).hexdigest()[:16]
    return f"{key}.{check}.npy"


def _verdict_name(key: str, rows: np.ndarray) -> str:
    return _reference_name(key, rows).removesuffix(".npy") + ".verified"


def verified_in_cache(spec: ModelSpec, graph: bytes, options, rows: np.ndarray) -> bool:
    """Whether load_verified would serve this graph without importing TensorFlow: its conversion and
    TensorFlow's answers on `rows` are in the cache, and a load passed its check within the tolerance
    in force now."""
    cache = Cache(options.onnx_cache)
    key = conversion_key(spec, graph)
    verdict = cache.read(_verdict_name(key, rows))
    try:
        difference = float(verdict) if verdict is not None else float("inf")
    except ValueError:
        return False
    return (difference <= options.onnx_tolerance and cache.has(f"{key}.onnx") and cache.has(_reference_name(key, rows))
            and not cache.has(f"{key}.refused"))


def _difference(servable, rows: np.ndarray, reference: np.ndarray) -> float:
    """The largest absolute difference from TensorFlow, at the check inputs' batch and at a batch of one."""
    try:
        batch, single = servable.run(rows), servable.run(rows[:1])
    except Exception as error:
        raise Unverified(f"ONNX Runtime failed on the check inputs "
                         f"({first_line(error, 200)})") from None
    if batch.shape != reference.shape:
        raise Unverified(f"the converted model answers {batch.shape[1:]} per input, TensorFlow {reference.shape[1:]}")
    return max(largest(batch, reference), largest(single, reference[:1]))


def largest(have: np.ndarray, want: np.ndarray) -> float:
    both_nan = np.isnan(have) & np.isnan(want)
    return float(np.max(np.where(both_nan, 0.0, np.abs(have.astype(np.float64) - want))))


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    import io

    return np.load(io.BytesIO(data), allow_pickle=False)


def distribution_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def tf2onnx_version() -> str:
    return distribution_version("tf2onnx")


def tensorflow_version() -> str:
    """TensorFlow's version without importing it (the reference outputs are its answers)."""
    for distribution in ("tensorflow-cpu", "tensorflow", "tensorflow-intel", "tf-nightly"):
        found = distribution_version(distribution)
        if found != "unknown":
            return found
    return "unknown"


class Cache:
    def __init__(self, directory: Path | None):
        self.directory = directory

    def read(self, name: str) -> bytes | None:
        if self.directory is None:
            return None
        try:
            return (self.directory / name).read_bytes()
        except OSError:
            return None

    def has(self, name: str) -> bool:
        return self.directory is not None and (self.directory / name).is_file()

    def write(self, name: str, data: bytes) -> None:
        if self.directory is None:
            return
        temporary = self.directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(data)
            os.replace(temporary, self.directory / name)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            log.warning("onnx_cache_unwritable", directory=str(self.directory), error=str(error))
