"""Run a committed frozen model on already-cropped patches, for evaluation, training checks and tests.

Generated patches are made at the model's input size, so they skip the crop: this reads the model
as Pinpoint's repository does, prepares the patches as the server does, and feeds the frozen graph in
a tf.compat.v1 Session.
Points on whole photographs go through `service.engine.Engine` instead (realcheck.py), so they
are cropped exactly as Pinpoint crops.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from service.classify.preprocess import prepare
from service.serving import repository


def spec(models_dir: Path, labels_dir: Path, name: str) -> repository.ModelSpec:
    """The version of `name` Pinpoint would serve, read by Pinpoint's own repository."""
    found = repository.scan(Path(models_dir), Path(labels_dir))
    for candidate in found.specs:
        if candidate.name == name:
            return candidate
    raise FileNotFoundError(found.problems.get(name, f"no servable model {name!r} under {models_dir}"))


class FrozenModel:
    """One frozen graph in its own tf.Graph and Session; `probabilities(uint8 crops)`."""

    def __init__(self, models_dir: Path, labels_dir: Path, name: str):
        import tensorflow as tf

        self.name = name
        self.spec = spec(models_dir, labels_dir, name)
        self.labels = list(self.spec.labels)
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(self.spec.graph_path.read_bytes())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.input = self.graph.get_tensor_by_name(self.spec.input.tensor)
        self.output = self.graph.get_tensor_by_name(self.spec.output_tensor)
        self.session = tf.compat.v1.Session(graph=self.graph, config=tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=2, inter_op_parallelism_threads=1))

    def probabilities(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        """Normalised as the server normalises (service.classify.preprocess), then run."""
        outputs = [self.session.run(self.output, {self.input: prepare(self.spec.input, crops[i:i + batch])})
                   for i in range(0, len(crops), batch)]
        scores = np.concatenate(outputs)
        if self.spec.softmax:
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

