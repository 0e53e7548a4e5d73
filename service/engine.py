"""The classification pipeline, top to bottom: image source -> imaging -> runtime -> answer.

Used by the HTTP handlers and, in-process, by `pinpoint predict`; it knows no HTTP and no
TensorFlow (the runtime owns that). The answer is the JSON document of ../shared/API.md.
"""

from __future__ import annotations

import contextlib
import concurrent.futures
import time
import threading
import uuid
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import structlog

from service import imaging, paths, repository
from service.config import Settings, load_settings
from service.errors import BadRequest, ModelUnavailable, NotFound, PinpointError, PointOutOfBounds, Timeout
from service.preprocess import prepare
from service.runtime import Outcome, Runtime
from service.cache import DecodedCache, file_identity
from service.store import ImageStore

log = structlog.get_logger("pinpoint.engine")

def _sample(fmt: str) -> bytes:
    import io
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=fmt)
    return buffer.getvalue()


_SAMPLES = [_sample(fmt) for fmt in ("JPEG", "PNG")]
MAX_POINTS = 256
MAX_TOP_K = 20


class Engine:
    def __init__(self, settings: Settings):
        self.on_batch = None  # passed to every runtime this engine makes (metrics)
        self.draining = False  # set on shutdown: /readyz says 503 while in-flight work finishes
        self._leases: dict[int, int] = {}  # id(runtime) -> requests using it, so a reload can wait for them
        self._lease_lock = threading.Condition()
        self._configure(settings)
        self.runtime = self._new_runtime(settings)

    def _configure(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ImageStore(settings.upload_dir, settings.upload_max_total_bytes, settings.upload_retention_s)
        self.limits = imaging.ImageLimits(settings.max_pixels, settings.max_side, settings.formats)
        self.cache = DecodedCache(settings.decoded_cache_bytes)

    def _new_runtime(self, settings: Settings) -> Runtime:
        discovery = repository.scan(settings.models, settings.labels)
        for model, problem in discovery.problems.items():
            log.error("model_config_invalid", model=model, error=problem)
        runtime = Runtime(discovery.specs, max_batch=settings.max_batch, queue_size=settings.queue_size,
                          intra_op_threads=settings.intra_op_threads,
                          inter_op_threads=settings.inter_op_threads, fuse_models=settings.fuse_models)
        runtime.on_batch = lambda crops, run_ms: self.on_batch and self.on_batch(crops, run_ms)
        return runtime

    def reload(self, settings: Settings, ready_timeout: float = 300) -> None:
        """Serve a fresh scan of the model repository, with these settings, without dropping a request:
        the new runtime loads and warms beside the old one, takes over, and the old one stops once the
        requests that were using it have their answers."""
        runtime = self._new_runtime(settings)
        runtime.start()
        if not runtime.wait_ready(ready_timeout):
            runtime.stop()
            raise ModelUnavailable("the reloaded models did not load in time")
        old = self.runtime
        self._configure(settings)
        self.runtime = runtime
        with self._lease_lock:
            self._lease_lock.wait_for(lambda: self._leases.get(id(old), 0) == 0, timeout=settings.deadline_ms / 1000 + 5)
        old.stop()
        log.info("reloaded", models={name: status.version for name, status in runtime.models.items()})

    @contextlib.contextmanager
    def _lease(self) -> Iterator[Runtime]:
        """The current runtime, held for one request."""
        with self._lease_lock:
            runtime = self.runtime
            self._leases[id(runtime)] = self._leases.get(id(runtime), 0) + 1
        try:
            yield runtime
        finally:
            with self._lease_lock:
                self._leases[id(runtime)] -= 1
                if not self._leases[id(runtime)]:
                    del self._leases[id(runtime)]
                self._lease_lock.notify_all()

    @classmethod
    @contextlib.contextmanager
    def open(cls, models_dir: str | Path = "models", labels_dir: str | Path = "labels",
             settings: Settings | None = None, ready_timeout: float = 120) -> Iterator["Engine"]:
        """An in-process engine with its models loaded, for scripts and `pinpoint predict`."""
        if settings is None:
            settings = load_settings(environ={}, overrides={"models": str(models_dir), "labels": str(labels_dir)})
        engine = cls(settings)
        engine.start()
        try:
            if not engine.runtime.wait_ready(ready_timeout):
                raise ModelUnavailable("the models did not load in time")
            yield engine
        finally:
            engine.stop()

    def start(self) -> None:
        self.runtime.start()
        # Pillow loads its decoders lazily: pay that here rather than in the first request.
        for sample in _SAMPLES:
            try:
                imaging.decode(sample, self.limits)
            except PinpointError:
                pass  # a format this server does not accept

    def stop(self) -> None:
        self.runtime.stop()

    @property
    def ready(self) -> bool:
        runtime = self.runtime
        return (not self.draining and runtime.ready
                and all(s.state == "AVAILABLE" for s in runtime.models.values()))

    def validate(self, data: bytes) -> imaging.DecodedImage:
        """Prove the bytes decode within the limits: a JPEG is decoded at 1/8 scale, which is enough."""
        return imaging.decode(data, self.limits, reduce=8)

    def classify(self, image: bytes | None = None, *, points: Sequence[Sequence[float]], units: str = "px",
                 models: Sequence[str] | None = None, top_k: int = 5, path: str | None = None,
                 image_id: str | None = None, deadline_ms: float | None = None,
                 request_id: str | None = None) -> dict:
        with self._lease() as runtime:  # one runtime for the whole request, even across a reload
            return self._classify(runtime, image, points=points, units=units, models=models, top_k=top_k,
                                  path=path, image_id=image_id, deadline_ms=deadline_ms, request_id=request_id)

    def _classify(self, runtime: Runtime, image, *, points, units, models, top_k, path, image_id, deadline_ms,
                  request_id) -> dict:
        started = time.perf_counter()
        deadline = time.monotonic() + (deadline_ms or self.settings.deadline_ms) / 1000
        _check_options(units, top_k, points)
        statuses = self._select_models(runtime, models)

        decode_started = time.perf_counter()
        decoded = self._decoded(image, path, image_id, [s.spec.crop for s in statuses])
        decode_ms = (time.perf_counter() - decode_started) * 1000

        pixel_points = [_to_pixels(i, point, units, decoded.width, decoded.height) for i, point in enumerate(points)]
        crop_started = time.perf_counter()
        feeds = self._feeds(decoded, pixel_points, [s.spec for s in statuses])
        crop_ms = (time.perf_counter() - crop_started) * 1000

        outcome = self._infer(runtime, feeds, deadline)
        errors = dict(outcome.errors)
        for status in statuses:
            rows = outcome.outputs.get(status.name)
            if rows is not None and rows.shape[1] != len(status.spec.labels):
                errors[status.name] = (f"the model gave {rows.shape[1]} scores for {len(status.spec.labels)} labels;"
                                       " its labels file does not match the graph")
                del outcome.outputs[status.name]
        if len(errors) == len(statuses):
            raise ModelUnavailable("every model failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
        predictions = []
        for index, (x, y) in enumerate(pixel_points):
            results = {}
            for status in statuses:
                if status.name in outcome.outputs:
                    row = outcome.outputs[status.name][index]
                    results[status.name] = _top_k(row, status.spec.labels, top_k, status.spec.softmax)
            predictions.append({"point": {"x": _number(x), "y": _number(y)}, "results": results})
        return {
            "request_id": request_id or uuid.uuid4().hex,
            "image": {"width": decoded.width, "height": decoded.height, "format": decoded.format},
            "predictions": predictions,
            "models": {s.name: {"version": s.version} for s in statuses},
            "errors": errors,
            "timings_ms": {
                "decode": round(decode_ms, 2),
                "crop": round(crop_ms, 2),
                "queue": round(outcome.queue_ms, 2),
                "infer": round(outcome.run_ms, 2),
                "total": round((time.perf_counter() - started) * 1000, 2),
            },
        }

    # ---- steps ----
    def _select_models(self, runtime: Runtime, names: Sequence[str] | None):
        served = runtime.models
        if names:
            unknown = [name for name in names if name not in served]
            if unknown:
                raise NotFound(f"unknown model(s): {', '.join(unknown)}; served: {', '.join(served) or 'none'}")
            chosen = [served[name] for name in dict.fromkeys(names)]
        else:
            chosen = list(served.values())
        if not runtime.ready:
            raise ModelUnavailable("the models are still loading", retry_after=1)
        available = [status for status in chosen if status.state == "AVAILABLE"]
        if not available:
            raise ModelUnavailable("no requested model is available" if chosen else "no models are served")
        return available

    def _decoded(self, image: bytes | None, path: str | None, image_id: str | None,
                 crops: list[imaging.CropSpec]) -> imaging.DecodedImage:
        """The image's pixels, decoded no larger than the crops need, from the cache for server files."""
        given = [name for name, value in (("image", image), ("path", path), ("image_id", image_id))
                 if value is not None]
        if len(given) != 1:
            raise BadRequest("give exactly one image source: an image, a path or an image_id"
                             + (f" (got {', '.join(given)})" if given else ""))
        if image is not None:
            return self._decode_bytes(image, crops)
        file = (paths.confine(self.settings.image_root, path) if path is not None
                else self.store.path(image_id))
        try:
            key = (file_identity(file.stat()), frozenset(crops))
        except FileNotFoundError:
            raise NotFound("the image is gone") from None
        decoded = self.cache.get(key)
        if decoded is None:
            decoded = self._decode_bytes(paths.read_limited(file, self.settings.max_body_bytes), crops)
            self.cache.put(key, decoded)
        return decoded

    def _decode_bytes(self, data: bytes, crops: list[imaging.CropSpec]) -> imaging.DecodedImage:
        header = imaging.probe(data, self.limits)
        reduce = imaging.reduction(crops, header.width, header.height) if self.settings.draft_decode else 1
        return imaging.decode_header(header, reduce)

    def _feeds(self, decoded: imaging.DecodedImage, points, specs) -> dict[str, np.ndarray]:
        """Each distinct crop is cut once and shared by every model that asks for the same one."""
        crops: dict[imaging.CropSpec, np.ndarray] = {}
        feeds = {}
        for spec in specs:
            if spec.crop not in crops:
                crops[spec.crop] = np.stack([imaging.crop(decoded, spec.crop, x, y) for x, y in points])
            feeds[spec.name] = prepare(spec.input, crops[spec.crop])
        return feeds

    def _infer(self, runtime: Runtime, feeds, deadline: float) -> Outcome:
        """Wait for the runtime until the deadline; a model still running then is reported, not awaited."""
        job = runtime.submit(feeds, deadline)
        try:
            return job.future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            job.future.cancel()  # dropped from the queue if it has not started
        except concurrent.futures.CancelledError:
            raise ModelUnavailable("the runtime stopped before answering") from None
        outputs, errors = dict(job.results), dict(job.errors)
        if not outputs:
            raise Timeout("the request missed its deadline")
        for name in feeds:
            if name not in outputs and name not in errors:
                errors[name] = "the model missed the request's deadline"
        return Outcome(outputs, errors, (time.monotonic() - job.queued_at) * 1000, 0.0)


def _check_options(units: str, top_k: int, points) -> None:
    if units not in ("px", "pct"):
        raise BadRequest(f"units must be 'px' or 'pct', got {units!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise BadRequest(f"top_k must be an integer from 1 to {MAX_TOP_K}")
    if not points:
        raise BadRequest("give a point: x and y, or points")
    if len(points) > MAX_POINTS:
        raise BadRequest(f"at most {MAX_POINTS} points per request")


def _to_pixels(index: int, point, units: str, width: int, height: int) -> tuple[float, float]:
    x, y = point
    if units == "pct":
        if not (0 <= x <= 100 and 0 <= y <= 100):
            raise PointOutOfBounds(f"point {index} ({x}, {y}) is outside 0..100 percent")
        # 100% is the far edge; keep it on the last pixel rather than one past it.
        return min(x / 100 * width, width - 0.5), min(y / 100 * height, height - 0.5)
    if not (0 <= x < width and 0 <= y < height):
        raise PointOutOfBounds(f"point {index} ({x}, {y}) is outside the {width}x{height} image")
    return float(x), float(y)


def _top_k(row: np.ndarray, labels: Sequence[str], k: int, softmax: bool) -> list[dict]:
    scores = row.astype(np.float64)
    if softmax:
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    scores = np.nan_to_num(np.clip(scores, 0.0, 1.0))
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"label": labels[i], "score": round(float(scores[i]), 6)} for i in order]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)

