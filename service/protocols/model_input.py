"""Pinpoint's models as a tensor protocol sees them (TF Serving's Predict, the Open Inference Protocol's
infer): one input and one output, whatever the graph's tensors are called.

- the input, `input` (or a SavedModel's own alias), is the model's input tensor, already cropped and
  normalised; or, per example, an encoded image: that whole image, resized as the model's crop is;
- the output, `scores` (or the SavedModel's alias), is the graph's raw output rows (no softmax added).

A SavedModel's signature with several named inputs or outputs, or one other than the served signature,
goes through service/protocols/named_tensors.py instead.
"""

from __future__ import annotations

import numpy as np

from service.classify import imaging
from service.classify.preprocess import prepare
from service.engine import Engine
from service.serving import model_run
from service.serving.manager import Version


def predict(engine: Engine, models: model_run.Models, value, images: bool) -> np.ndarray:
    """The held version's raw output rows for a batch: `value` is the input tensor, or with `images` a
    list of encoded images (each resized as the model's crop is)."""
    version = models.version
    rows = _images(engine, version, value) if images else _tensor_rows(version, value)
    return models.run(version, rows)


def whole_image(spec: imaging.CropSpec) -> imaging.CropSpec:
    """The model's crop made of a whole image: its size, channels and resizing, all of the picture."""
    return imaging.CropSpec(spec.width, spec.height, spec.channels, fraction=1.0, min_px=1,
                            keep_aspect=spec.keep_aspect, resize=spec.resize)


def _images(engine: Engine, version: Version, images: list[bytes]) -> np.ndarray:
    """Whole images, each resized as the model's crop would be."""
    whole = whole_image(version.spec.crop)
    crops = []
    for data in images:
        decoded = imaging.decode(data, engine.limits)
        crops.append(imaging.crop(decoded, whole, decoded.width / 2, decoded.height / 2))
    return prepare(version.spec.input, np.stack(crops))


def _tensor_rows(version: Version, value) -> np.ndarray:
    if version.spec.input.kind == "encoded":
        return np.array(value, dtype=object)
    return np.asarray(value, dtype=np.dtype(version.spec.input.dtype))
