"""The core, assembled: the runner (the manager, i.e. model lifecycle, with its runtime: in this process
or the model runner's), the classify pipeline, the image store and the decoded-image cache, all built
from one Settings.

Used by the HTTP application and, in-process, by `pinpoint predict` and scripts (`Engine.open`).
It knows no HTTP and no TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import structlog

from service.classify import imaging
from service.classify.image_cache import DecodedCache
from service.classify.image_store import ImageStore
from service.classify.pipeline import Pipeline
from service.classify.request import ClassifyRequest, ClassifyResult, Upload, model_refs
from service.config import Settings, load_settings
from service.errors import ModelUnavailable, PinpointError
from service.processes.runner import LocalRunner, Runner

log = structlog.get_logger("pinpoint.engine")


def _sample(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=fmt)
    return buffer.getvalue()


_SAMPLES = [_sample(fmt) for fmt in ("JPEG", "PNG")]


class Engine:
    """The core in front of a Runner (what holds the models), chosen once: in this process, or (an API
    worker's) in the model runner's process, over the worker hop (service/processes/runner.py)."""

    def __init__(self, settings: Settings, runner: Runner | None = None):
        self.runner: Runner = runner if runner is not None else LocalRunner(settings)
        self.manager = self.runner.manager
        self.runtime = self.manager.runtime
        self.configure(settings)

    @property
    def remote(self) -> bool:
        return self.runner.remote

    def configure(self, settings: Settings) -> None:
        """Take these settings (at start and on SIGHUP). The runtime's queue size and thread pools are
        fixed at start; everything else applies to the next request."""
        self.settings = settings
        self.store = ImageStore(settings.upload_dir, settings.upload_max_total_bytes, settings.upload_retention_s)
        self.limits = imaging.ImageLimits(settings.max_pixels, settings.max_side, settings.formats)
        self.cache = DecodedCache(settings.decoded_cache_bytes)
        self.runner.configure(settings)
        self.pipeline = Pipeline(self.manager, settings, self.store, self.cache, self.limits)

    @classmethod
    @contextlib.contextmanager
    def open(cls, models_dir: str | Path = "models", labels_dir: str | Path = "labels",
             settings: Settings | None = None, ready_timeout: float = 120) -> Iterator[Engine]:
        """An in-process engine with its models loaded, for scripts and `pinpoint predict`."""
        if settings is None:
            settings = load_settings(environ={}, overrides={"models": str(models_dir), "labels": str(labels_dir)})
        engine = cls(settings)
        engine.start()
        try:
            if not engine.manager.wait_ready(ready_timeout):
                raise ModelUnavailable("the models did not load: " + engine.load_errors())
            yield engine
        finally:
            engine.stop()

    def start(self) -> None:
        self.runner.start()  # loads the models, or (a worker) follows the runner's state
        # Pillow loads its decoders lazily: pay that here rather than in the first request.
        for sample in _SAMPLES:
            try:
                imaging.decode(sample, self.limits)
            except PinpointError:
                pass  # a format this server does not accept

    def stop(self) -> None:
        self.runner.stop()

    def load_errors(self) -> str:
        problems = [f"{entry.key}: {entry.error}" for versions in self.manager.snapshot().values()
                    for entry in versions if entry.error]
        return "; ".join(problems) or "none loaded"

    @property
    def ready(self) -> bool:
        return self.manager.ready

    def validate(self, data: bytes) -> imaging.DecodedImage:
        """Prove the bytes decode within the limits: a JPEG is decoded at 1/8 scale, which is enough."""
        return imaging.decode(data, self.limits, reduce=8)

    def classify(self, request: ClassifyRequest) -> ClassifyResult:
        return self.pipeline.classify(request)

    def classify_image(self, data: bytes, points, *, units: str = "px", models=(), top_k: int = 5) -> ClassifyResult:
        """Scripts' shortcut: classify points of image bytes (models as names, `color@2` allowed)."""
        return self.classify(ClassifyRequest(Upload(data), tuple(tuple(p) for p in points), units=units,
                                             models=model_refs(models), top_k=top_k))
