"""The classification pipeline, top to bottom: request -> image -> crops -> runtime -> result.

It knows no HTTP and no TensorFlow: a typed ClassifyRequest comes in, a typed ClassifyResult goes out
(service/classify/request.py); its versions are leased, run and retried as every route's are
(service/serving/model_run.py).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import structlog

from service.classify import imaging, paths
from service.classify.image_cache import DecodedCache, file_identity
from service.classify.image_store import ImageStore
from service.classify.preprocess import prepare
from service.classify.request import (
    ClassifyRequest,
    ClassifyResult,
    ImageInfo,
    ImageSource,
    Label,
    ModelAnswer,
    PointResult,
    ServerPath,
    Upload,
)
from service.errors import BadRequest, ModelUnavailable, NotFound, PointOutOfBounds
from service.serving import model_run
from service.serving.manager import Manager, Version

log = structlog.get_logger("pinpoint.pipeline")


class Pipeline:
    def __init__(self, manager: Manager, settings, store: ImageStore, cache: DecodedCache,
                 limits: imaging.ImageLimits):
        self.manager, self.settings, self.store, self.cache, self.limits = manager, settings, store, cache, limits

    def classify(self, request: ClassifyRequest) -> ClassifyResult:
        # None of the versions unloads meanwhile; one that cannot be had beside others is a per-model error.
        return model_run.run(self.manager, request.models, lambda models: self._classify(request, models),
                             request.deadline_ms or self.settings.deadline_ms, partial=True)

    def _classify(self, request: ClassifyRequest, models: model_run.Models) -> ClassifyResult:
        started = time.perf_counter()
        versions = models.versions
        for version in versions:
            if version.spec.tensors_only:
                raise BadRequest(f"model {version.name!r} cannot take one image crop: {tensors_only(version)}")
        # An upload's decode needs the points (it stops below the lowest crop); converted once, for both.
        points_in = functools.cache(lambda width, height: pixel_points(request, width, height))
        decode_started = time.perf_counter()
        decoded = self.decode(request.source, [v.spec.crop for v in versions], points_in)
        decode_ms = (time.perf_counter() - decode_started) * 1000

        points = points_in(decoded.width, decoded.height)
        crop_started = time.perf_counter()
        feeds = self.feeds(decoded, points, versions)
        crop_ms = (time.perf_counter() - crop_started) * 1000

        outcome = models.infer(feeds)
        errors: dict[str, str] = dict(models.errors)
        scores: dict[str, np.ndarray] = {}
        for version in versions:
            rows = outcome.outputs.get(version.key)
            if version.key in outcome.errors:
                errors[version.name] = outcome.errors[version.key]
            elif rows is not None and (mismatch := model_run.label_mismatch(version, rows)):
                errors[version.name] = mismatch
            elif rows is not None:
                scores[version.name] = model_run.probabilities(rows, version.spec.softmax)
        if not scores:
            raise ModelUnavailable("every model failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
        self._shadow(versions, feeds, scores)
        predictions = []
        for index, (x, y) in enumerate(points):
            results = {version.name: _top_k(scores[version.name][index], version.spec.labels, request.top_k)
                       for version in versions if version.name in scores}
            predictions.append(PointResult(x, y, results))
        return ClassifyResult(
            request_id=request.request_id or uuid.uuid4().hex,
            image=ImageInfo(decoded.width, decoded.height, decoded.format),
            predictions=predictions,
            models={v.name: ModelAnswer(v.version, v.backend) for v in versions},
            errors=errors,
            timings_ms={"decode": round(decode_ms, 2), "crop": round(crop_ms, 2),
                        "queue": round(outcome.queue_ms, 2), "infer": round(outcome.run_ms, 2),
                        "total": round((time.perf_counter() - started) * 1000, 2)})

    # ---- steps ----
    def decode(self, source: ImageSource, crops: list[imaging.CropSpec],
               points: Callable[[int, int], list[tuple[float, float]]]) -> imaging.DecodedImage:
        """The image's pixels, decoded no larger than the crops need: an upload only down to the lowest
        row its crops at `points` (the request's points, in pixels of a width x height image) read; a
        server file whole, kept in the cache for the next points."""
        if isinstance(source, Upload):
            header = imaging.probe(source.data, self.limits)
            crops_at = (crops, points(header.width, header.height))
            return imaging.decode_header(header, self._reduction(crops, header), crops_at)
        file = (paths.confine(self.settings.image_root, source.path) if isinstance(source, ServerPath)
                else self.store.path(source.image_id, source.owner))
        try:
            key = (file_identity(file.stat()), frozenset(crops))
        except FileNotFoundError:
            raise NotFound("the image is gone") from None
        decoded = self.cache.get(key)
        if decoded is None:
            header = imaging.probe(paths.read_limited(file, self.settings.max_body_bytes), self.limits)
            decoded = imaging.decode_header(header, self._reduction(crops, header))
            self.cache.put(key, decoded)
        return decoded

    def _reduction(self, crops: list[imaging.CropSpec], header: imaging.Header) -> int:
        return imaging.reduction(crops, header.width, header.height) if self.settings.draft_decode else 1

    @staticmethod
    def feeds(decoded: imaging.DecodedImage, points, versions: Sequence[Version]) -> dict[str, np.ndarray]:
        """Each distinct crop is cut once and shared by every version that asks for the same one."""
        crops: dict[imaging.CropSpec, np.ndarray] = {}
        feeds = {}
        for version in versions:
            spec = version.spec
            if spec.crop not in crops:
                crops[spec.crop] = np.stack([imaging.crop(decoded, spec.crop, x, y) for x, y in points])
            feeds[version.key] = prepare(spec.input, crops[spec.crop])
        return feeds

    def _shadow(self, versions: Sequence[Version], feeds, scores: dict[str, np.ndarray]) -> None:
        """Hand the shadow versions the same crops and this answer's top-1; nobody waits for them."""
        for version in versions:
            shadow = self.manager.shadow_of(version.name, version)
            if shadow is None or version.name not in scores or shadow.spec.input != version.spec.input:
                continue
            served = [version.spec.labels[i] for i in np.argmax(scores[version.name], axis=1)]
            self.manager.shadow(shadow, feeds[version.key], served)


def tensors_only(version: Version) -> str:
    """Why a SavedModel served as named tensors takes no crop, and where to call it instead."""
    signature = version.spec.signature
    inputs = ", ".join(t.key for t in signature.inputs) if signature else ""
    return (f"its signature {version.spec.signature_name!r} takes named tensors ({inputs}); call it with TF "
            "Serving's :predict or the Open Inference Protocol's infer (docs/api.md)")


def pixel_points(request: ClassifyRequest, width: int, height: int) -> list[tuple[float, float]]:
    """The request's points in pixels of a width x height image (PointOutOfBounds for one outside it)."""
    return [_to_pixels(i, point, request.units, width, height) for i, point in enumerate(request.points)]


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


def _top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[Label]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [Label(labels[i], round(float(scores[i]), 6)) for i in order]
