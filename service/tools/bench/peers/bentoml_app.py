"""The BentoML peer (bentoml 1.4), set up as its docs recommend for 2 CPUs with batching on: an API
service with a worker per CPU (`workers="cpu_count"`) that takes the upload, decodes and crops, and one
model service (one worker) whose APIs are batchable (`max_batch_size`, `max_latency_ms`): BentoML's
adaptive batching merges the crops of concurrent requests into one run per model.

One batchable API per model (`color`, `pattern`, ...), made from the manifest named by
$PINPOINT_PEER_MANIFEST; the API service calls them concurrently (`to_async` and `asyncio.gather`, as
BentoML's docs compose services) and decodes in a thread, off its event loop. Run in .bench-venv as
`bentoml serve service.tools.bench.peers.bentoml_app:Classify --port N` from the checkout's root.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import bentoml
import numpy as np
from fastapi import HTTPException

from service.tools.bench.peers import common

MAX_BATCH = 32
MAX_LATENCY_MS = 10_000  # BentoML sheds (503) a request it expects to miss this; wrk waits 10 s. 1 s ran no faster


def _model_names() -> list[str]:
    return [entry["name"] for entry in json.loads(Path(os.environ[common.MANIFEST_ENV]).read_text())["models"]]


def _batchable(name: str):
    def run(self, rows: np.ndarray) -> np.ndarray:
        return self.models[name].run(rows)

    run.__name__ = run.__qualname__ = name
    return bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)(run)


class _Models:
    """Every model of the manifest, one ONNX Runtime session each (two intra-op threads: one worker)."""

    def __init__(self) -> None:
        self.models = {model.name: model for model in common.load(threads=2)}


for _name in _model_names():
    setattr(_Models, _name, _batchable(_name))
Models = bentoml.service(name="pinpoint_peer_models", workers=1)(_Models)


@bentoml.service(name="pinpoint_peer_classify", workers="cpu_count")
class Classify:
    models = bentoml.depends(Models)

    def __init__(self) -> None:
        # The crops need each model's model.toml only; the sessions live in the model service.
        self.specs = common.load_specs()
        self.names = [model.name for model in self.specs]

    def _prepare(self, data: bytes, x: float, y: float):
        image = common.decode(data)
        x, y = common.point(image, x, y)
        return image, x, y, common.rows(self.specs, image, x, y)

    @bentoml.api(route="/v1/classify")
    async def classify(self, image: Path, x: float, y: float) -> dict:
        try:
            decoded, x, y, rows = await asyncio.to_thread(self._prepare, image.read_bytes(), x, y)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
        scores = await asyncio.gather(*(getattr(self.models.to_async, name)(rows[name]) for name in self.names))
        return common.answer(self.specs, decoded, x, y, {name: found[0] for name, found in zip(self.names, scores)})
