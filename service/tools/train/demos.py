"""The two trained demo models (color, pattern), each in one place: labels, input and crop, data, network, \
training budget.

The crop settings are the ones written to model.toml, and the generators draw patches as that
crop would cut them, so training matches serving.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Demo:
    name: str
    labels: tuple[str, ...]
    size: int                 # input height = width
    scale: float              # model.toml normalisation: value = pixel * scale + offset
    offset: float
    fraction: float           # model.toml [crop]
    min_px: int
    resize: str
    per_label: int            # training patches per label
    epochs: int
    batch_size: int
    learning_rate: float
    rotate: bool              # rot90 augmentation (no "up" in the data)
    comment: str

    def dataset(self, seed: int, per_label: int, training: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return _generator(self.name)(seed, per_label, self.size, self.resize, training=training)

    def network(self):
        from service.tools.train import networks

        return {"color": networks.color_net, "pattern": networks.pattern_net}[self.name](self.size, len(self.labels))


def _generator(name: str) -> Callable:
    if name == "color":
        from service.tools.train.color_data import dataset
    else:
        from service.tools.train.pattern_data import dataset
    return dataset


def _color() -> Demo:
    from service.tools.train.palette import COLOR_LABELS

    return Demo(
        name="color", labels=COLOR_LABELS, size=32, scale=1 / 255, offset=0.0,
        fraction=0.06, min_px=24, resize="bilinear",
        per_label=1300, epochs=10, batch_size=64, learning_rate=3e-3, rotate=True,
        comment="Pinpoint demo colour model: the colour at a point (a small window, 32x32 input).")


def _pattern() -> Demo:
    from service.tools.train.pattern_labels import PATTERN_LABELS

    return Demo(
        name="pattern", labels=PATTERN_LABELS, size=96, scale=2 / 255, offset=-1.0,
        fraction=0.25, min_px=96, resize="bilinear",
        per_label=1500, epochs=10, batch_size=64, learning_rate=4e-3, rotate=True,
        comment="Pinpoint demo pattern model: the print or surface around a point (separable CNN, 96x96).")


def get(name: str) -> Demo:
    try:
        return {"color": _color, "pattern": _pattern}[name]()
    except KeyError:
        raise SystemExit(f"unknown demo model {name!r}; choose color or pattern") from None


NAMES = ("color", "pattern")  # the generated-data demos (theme is built from pretrained weights: topics.py)
# Seeds of the held-out generated sets the model cards quote; training uses --seed (default 0).
HELD_OUT_SEED = 20_240
