"""Run a committed frozen model on already-cropped patches, for evaluation, training checks and tests.

Generated patches are made at the model's input size, so they skip the crop: this normalises them
by model.toml (scale/offset or mean/std) and feeds the frozen graph in a tf.compat.v1 Session.
Points on whole photographs go through `service.engine.Engine` instead (realcheck.py), so they
are cropped exactly as Pinpoint crops.
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

