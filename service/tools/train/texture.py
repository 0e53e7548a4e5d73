"""Surface textures in zero-mean, unit-spread form, to modulate a colour's lightness.

Some are generated (noise, weave, grain, brushed streaks); some are cut from the greyscale texture
photographs that ship inside scikit-image (brick, grass, gravel, ...), which give real surface
statistics without downloading anything. Photos used for the real-photo check are not used here.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from service.tools.train.photo import coordinates, smooth_field

# Greyscale photographs inside the scikit-image wheel that are surfaces rather than scenes.
MATERIAL_IMAGES = ("brick", "grass", "gravel", "moon", "coins", "clock", "cell")


@functools.cache
def material(name: str) -> np.ndarray:
    import skimage.data

    picture = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if picture.ndim == 3:
        picture = picture[..., :3].mean(axis=2)
    return picture / 255.0


def material_crop(rng: np.random.Generator, h: int, w: int, names=MATERIAL_IMAGES) -> np.ndarray:
    """A random window of a scikit-image texture photo at a random zoom, in 0..1."""
    picture = material(names[int(rng.integers(len(names)))])
    side = int(rng.integers(max(8, min(h, w) // 3), min(picture.shape) // 2))
    top = int(rng.integers(0, picture.shape[0] - side))
    left = int(rng.integers(0, picture.shape[1] - side))
    window = Image.fromarray(picture[top:top + side, left:left + side], "F")
    out = np.asarray(window.resize((w, h), Image.Resampling.BILINEAR))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out if rng.random() < 0.5 else out.T if h == w else out)


def standardised(values: np.ndarray) -> np.ndarray:
    values = values - values.mean()
    return (values / (values.std() + 1e-6)).astype(np.float32)


def fine_noise(rng, h, w):
    grain = rng.normal(0, 1, (h, w)).astype(np.float32)
    return standardised(0.5 * grain + smooth_field(rng, h, w, max(2, w // 4)))


def weave(rng, h, w):
    """Fabric: two crossing thread frequencies plus irregular threads."""
    yy, xx = coordinates(h, w)
    period = rng.uniform(0.05, 0.25)
    threads = np.sin(np.pi * xx / period) * np.sin(np.pi * yy / period)
    return standardised(threads + 0.5 * rng.normal(0, 1, (h, w)))


def grain(rng, h, w):
    """Wood or brushed grain: streaks along one direction, wavering."""
    yy, xx = coordinates(h, w)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy + 0.15 * smooth_field(rng, h, w, 3)
    frequency = rng.uniform(4, 20)
    return standardised(np.sin(frequency * np.pi * u) + 0.6 * np.sin(2.7 * frequency * np.pi * u + 1.0))


def scanned(rng, h, w):
    return standardised(material_crop(rng, h, w))


def mottle(rng, h, w):
    """A 0..1 mixing field: soft blotches at one or two scales (foliage, fur, clouds, wood)."""
    field = smooth_field(rng, h, w, int(rng.integers(2, 5)))
    if rng.random() < 0.6:
        field = 0.5 * field + 0.5 * smooth_field(rng, h, w, int(rng.integers(6, max(7, w // 3))))
    sharpness = rng.uniform(1.5, 6)
    return (1 / (1 + np.exp(-sharpness * field))).astype(np.float32)


KINDS = (fine_noise, weave, grain, scanned)


def random_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return KINDS[int(rng.integers(len(KINDS)))](rng, h, w)
