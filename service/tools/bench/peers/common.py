"""What every peer server does with one point of an upload, written once: decode, crop, prepare, run the
models with ONNX Runtime, answer the top 5 labels of each in Pinpoint's JSON shape.

Runs inside .bench-venv (numpy, Pillow, ONNX Runtime; no TensorFlow). The decoding, cropping and
preparation are Pinpoint's own functions (service.classify.imaging and .preprocess, model.toml read by
service.serving.repository), imported from the checkout on PYTHONPATH, so the peers' crops are Pinpoint's.
What a peer does differently is what a user writing it would do: it decodes the whole image (Pinpoint
decodes a large JPEG at reduced scale when every crop still has the pixels it needs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.classify import imaging
from service.classify.preprocess import prepare
from service.serving import repository

MANIFEST_ENV = "PINPOINT_PEER_MANIFEST"  # the manifest path, for servers started by a framework's own CLI
TOP_K = 5
LIMITS = imaging.ImageLimits()  # Pinpoint's defaults: 40 MP, 12,000 px a side


class Model:
    """One served model: its model.toml (as Pinpoint reads it) and an ONNX Runtime session."""

    def __init__(self, entry: dict, labels_dir: Path, threads: int | None):
        self.spec = repository.read_spec(entry["name"], entry["version"], Path(entry["directory"]), labels_dir)
        self.name = self.spec.name
        self.input_name, self.output_name = entry["input"], entry["output"]
        self.session = None if threads is None else ort.InferenceSession(
            entry["onnx"], session_options(threads), providers=["CPUExecutionProvider"])

    def run(self, rows: np.ndarray) -> np.ndarray:
        """[N, ...] prepared rows -> [N, classes] scores (softmax applied when model.toml says logits)."""
        output = np.asarray(self.session.run([self.output_name], {self.input_name: rows})[0], np.float32)
        return probabilities(output.reshape(len(rows), -1), self.spec.softmax)


def session_options(threads: int) -> ort.SessionOptions:
    """The options Pinpoint's own sessions have (service/serving/backends/onnx_runtime.py), so a model
    run costs the same in every server and the comparison is of the serving around it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load(threads: int, manifest: str | Path | None = None) -> list[Model]:
    """Every model of the manifest (by default the one named by $PINPOINT_PEER_MANIFEST), each session with
    `threads` intra-op threads, warmed by one run."""
    models = _read(manifest, threads)
    for model in models:
        i = model.spec.input
        model.run(prepare(i, np.full((1, i.height, i.width, i.channels), 128, np.uint8)))
    return models


def load_specs(manifest: str | Path | None = None) -> list[Model]:
    """The models' model.toml only, no sessions: what a process that crops but runs no model needs."""
    return _read(manifest, None)


def _read(manifest: str | Path | None, threads: int | None) -> list[Model]:
    document = json.loads(Path(manifest or os.environ[MANIFEST_ENV]).read_text())
    return [Model(entry, Path(document["labels"]), threads) for entry in document["models"]]


def decode(data: bytes) -> imaging.DecodedImage:
    return imaging.decode(data, LIMITS)


def point(image: imaging.DecodedImage, x, y) -> tuple[float, float]:
    x, y = float(x), float(y)
    if not (0 <= x < image.width and 0 <= y < image.height):
        raise ValueError(f"point ({x}, {y}) is outside the {image.width}x{image.height} image")
    return x, y


def rows(models: list[Model], image: imaging.DecodedImage, x: float, y: float) -> dict[str, np.ndarray]:
    """Each model's prepared input row ([1, ...]) for the point; models with equal crop specs share a crop."""
    crops: dict = {}
    found = {}
    for model in models:
        if model.spec.crop not in crops:
            crops[model.spec.crop] = imaging.crop(image, model.spec.crop, x, y)[np.newaxis]
        found[model.name] = prepare(model.spec.input, crops[model.spec.crop])
    return found


def run_batch(models: list[Model], batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Several requests' rows -> their scores: one session run per model for the whole batch."""
    scores = {model.name: model.run(np.concatenate([item[model.name] for item in batch])) for model in models}
    return [{name: found[index] for name, found in scores.items()} for index in range(len(batch))]


def answer(models: list[Model], image: imaging.DecodedImage, x: float, y: float,
           scores: dict[str, np.ndarray]) -> dict:
    """The JSON answer, shaped as Pinpoint's (docs/api.md) minus what only Pinpoint has (ids, timings)."""
    labels = {model.name: model.spec.labels for model in models}
    return {"image": {"width": image.width, "height": image.height, "format": image.format},
            "predictions": [{"point": {"x": x, "y": y},
                             "results": {name: top_k(found, labels[name]) for name, found in scores.items()}}]}


def classify(models: list[Model], data: bytes, x, y) -> dict:
    """One request start to end in the calling thread (the FastAPI script's whole work)."""
    image = decode(data)
    x, y = point(image, x, y)
    return answer(models, image, x, y, run_batch(models, [rows(models, image, x, y)])[0])


def probabilities(rows: np.ndarray, softmax: bool) -> np.ndarray:
    """As Pinpoint's service.classify.pipeline.probabilities (which imports more than this venv has)."""
    scores = rows.astype(np.float64)
    if softmax:
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    return np.nan_to_num(np.clip(scores, 0.0, 1.0))


def top_k(scores: np.ndarray, labels, k: int = TOP_K) -> list[dict]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"label": labels[i], "score": round(float(scores[i]), 6)} for i in order]
