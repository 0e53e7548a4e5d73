"""What a camera and a crop do to a surface: light, shadow, colour cast, blur, noise, JPEG, resize.

Generated patches pass through these so the networks learn colours and patterns as they look in
photographs, not as clean RGB triples. Arrays are float32 H×W×3 in 0..1 unless said otherwise.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def smooth_field(rng: np.random.Generator, h: int, w: int, cells: int = 3) -> np.ndarray:
    """Low-frequency noise in -1..1: a tiny random grid upsampled bicubically (fast, no scipy)."""
    grid = rng.uniform(-1, 1, (cells + 1, cells + 1)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.Resampling.BICUBIC))
    return np.clip(field, -1, 1)


def coordinates(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in -1..1, the frame every generator draws in."""
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    return np.meshgrid(ys, xs, indexing="ij")


def lighting(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    """A multiplier around 1: a directional gradient plus gentle unevenness, as from a window or lamp."""
    yy, xx = coordinates(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    field = 0.6 * ramp + 0.4 * smooth_field(rng, h, w, int(rng.integers(2, 5)))
    return (1 + strength * field).astype(np.float32)[..., None]


def shadow(rng: np.random.Generator, h: int, w: int, depth: float, keep_centre: bool = True) -> np.ndarray:
    """A soft-edged cast shadow. With keep_centre the centre stays lit, so the label is still visible."""
    yy, xx = coordinates(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    distance = np.cos(angle) * xx + np.sin(angle) * yy
    edge = rng.uniform(0.25, 0.8) if keep_centre else rng.uniform(-0.6, 0.8)
    softness = rng.uniform(0.03, 0.3)
    inside = 1 / (1 + np.exp(-(distance - edge) / softness))
    return (1 - depth * inside).astype(np.float32)[..., None]


def folds(rng: np.random.Generator, h: int, w: int, depth: float) -> np.ndarray:
    """Soft shading bands (cloth folds, a curved surface), darkening by up to `depth`."""
    yy, xx = coordinates(h, w)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy + 0.3 * smooth_field(rng, h, w, 3)
    waves = 0.5 + 0.5 * np.sin(u * rng.uniform(2, 8) + rng.uniform(0, 2 * np.pi))
    return (1 - depth * waves ** rng.uniform(1, 3)).astype(np.float32)[..., None]


def colour_cast(rng: np.random.Generator, image: np.ndarray, amount: float) -> np.ndarray:
    """White balance that is a little off, per channel, as in most phone and studio photos."""
    gains = 1 + rng.uniform(-amount, amount, 3).astype(np.float32)
    return image * gains


def gloss(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A small soft specular highlight (0..1 mask): shiny plastic and paint catch the light too."""
    yy, xx = coordinates(h, w)
    cy, cx = rng.uniform(-0.9, 0.9, 2)
    ry, rx = rng.uniform(0.04, 0.25, 2)
    if rng.random() < 0.4:  # a streak, as along a tube or the rim of a lens
        ry, rx = (ry * 4, rx / 3) if rng.random() < 0.5 else (ry / 3, rx * 4)
    return np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)).astype(np.float32)[..., None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def camera(rng: np.random.Generator, image: np.ndarray, blur: float = 1.2, noise: float = 0.03,
           jpeg: float = 0.6) -> np.ndarray:
    """Focus blur, sensor noise and JPEG compression at the image's own resolution -> uint8."""
    sigma = rng.uniform(0, blur)
    if noise:
        image = image + rng.normal(0, rng.uniform(0, noise), image.shape).astype(np.float32)
    pil = Image.fromarray(to_uint8(image))
    if sigma > 0.3:
        pil = pil.filter(ImageFilter.GaussianBlur(sigma))
    if rng.random() < jpeg:
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=int(rng.integers(35, 95)))
        pil = Image.open(io.BytesIO(buffer.getvalue()))
    return np.asarray(pil.convert("RGB"))


def resize_like_crop(image: np.ndarray, size: int, resize: str = "bilinear") -> np.ndarray:
    """The window resized to the model input with the Pillow filter the model.toml names."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling[resize.upper()]))
