"""Run a committed model the way Pinpoint serves it, for evaluation and tests.

Points on real photos go through `service.engine.Engine` when the service provides it, so the
real-photo check measures what users get. Without it (or for already-cropped generated patches)
this module follows the same documented rules itself: model.toml's [crop] window centred on the
point and shifted inside the image, centre-cropped to the input aspect, resized with the named
Pillow filter, normalised with scale/offset or mean/std, fed to the frozen graph in a
tf.compat.v1 Session.
"""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import numpy as np
from PIL import Image


def version_dir(models_dir: Path, name: str) -> Path:
    versions = [p for p in (Path(models_dir) / name).iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no version of model {name!r} under {models_dir}")
    return max(versions, key=lambda p: int(p.name))


def read_labels(labels_dir: Path, name: str) -> list[str]:
    lines = (Path(labels_dir) / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def crop_box(config: dict, width: int, height: int, x: float, y: float) -> tuple[float, float, float, float]:
    crop, size = config.get("crop", {}), config["input"]
    if "box" in crop:
        win_w, win_h = float(crop["box"][0]), float(crop["box"][1])
    else:
        fraction, min_px = float(crop.get("fraction", 0.15)), int(crop.get("min_px", 24))
        win_w, win_h = max(fraction * width, min_px), max(fraction * height, min_px)
    win_w, win_h = min(win_w, width), min(win_h, height)
    if crop.get("keep_aspect", True):
        aspect = size["width"] / size["height"]
        if win_w / win_h > aspect:
            win_w = win_h * aspect
        else:
            win_h = win_w / aspect
    left = min(max(x - win_w / 2, 0.0), width - win_w)
    top = min(max(y - win_h / 2, 0.0), height - win_h)
    return left, top, left + win_w, top + win_h


def crop(config: dict, image: Image.Image, x: float, y: float) -> np.ndarray:
    """uint8 [H, W, 3] crop of an RGB PIL image around (x, y) in pixels."""
    size = config["input"]
    box = crop_box(config, image.width, image.height, x, y)
    resample = Image.Resampling[config.get("crop", {}).get("resize", "bilinear").upper()]
    return np.asarray(image.resize((size["width"], size["height"]), resample, box=box), dtype=np.uint8)


class FrozenModel:
    """One frozen graph in its own tf.Graph and Session; `probabilities(uint8 crops)`."""

    def __init__(self, models_dir: Path, labels_dir: Path, name: str):
        import tensorflow as tf

        self.name = name
        self.directory = version_dir(models_dir, name)
        self.config = tomllib.loads((self.directory / "model.toml").read_text(encoding="utf-8"))
        self.labels = read_labels(labels_dir, self.config.get("labels", name))
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString((self.directory / self.config.get("graph", "frozen_graph.pb")).read_bytes())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.input = self.graph.get_tensor_by_name(self.config["input"]["tensor"])
        self.output = self.graph.get_tensor_by_name(self.config["output"]["tensor"])
        self.session = tf.compat.v1.Session(graph=self.graph, config=tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=2, inter_op_parallelism_threads=1))

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        spec = self.config["input"]
        values = crops.astype(np.float32)
        if "mean" in spec:
            return (values - np.float32(spec["mean"])) / np.float32(spec["std"])
        return values * np.float32(spec.get("scale", 1.0)) + np.float32(spec.get("offset", 0.0))

    def probabilities(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        outputs = [self.session.run(self.output, {self.input: self.normalise(crops[i:i + batch])})
                   for i in range(0, len(crops), batch)]
        scores = np.concatenate(outputs)
        if self.config["output"].get("softmax", False):
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def classify_points(self, image: Image.Image, points) -> np.ndarray:
        crops = np.stack([crop(self.config, image, x, y) for x, y in points])
        return self.probabilities(crops)

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def engine_available() -> bool:
    try:
        from service.engine import Engine  # noqa: F401
    except ImportError:
        return False
    return True


def classify_with_engine(models_dir: Path, labels_dir: Path, name: str, labels: list[str],
                         image: Image.Image, points) -> np.ndarray:
    """Scores [len(points), len(labels)] from Pinpoint's own in-process pipeline (top-k answers;
    labels outside the answered top-k get score 0)."""
    from service.engine import Engine

    with Engine.open(models_dir=str(models_dir), labels_dir=str(labels_dir)) as engine:
        answer = engine.classify(png_bytes(image), points=[tuple(p) for p in points], units="px",
                                 models=[name], top_k=len(labels))
    scores = np.zeros((len(points), len(labels)), dtype=np.float32)
    for row, prediction in enumerate(answer["predictions"]):
        for result in prediction["results"][name]:
            scores[row, labels.index(result["label"])] = result["score"]
    return scores
