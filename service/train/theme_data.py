"""Generated training patches for the theme model: the larger window around a point of a product photo.

A theme patch is a print or surface drawn at the window size a crop would take (96 to 160 px here),
put under photographic light (gradients, folds, shadow, colour cast), blurred, noised, JPEG'd and
resized to 96×96 with the Pillow filter Pinpoint uses.
"""

from __future__ import annotations

import numpy as np

from service.train import patterns, photo, prints, texture
from service.train.palette import sample_colour
from service.train.themes import THEME_LABELS

NATURAL_TINTS = (("brown", "neutral"), ("grey", "white"), ("green", "brown"), ("brown", "black"),
                 ("grey", "black"), ("red", "brown"), ("neutral", "white"), ("green", "black"))


def solid(rng: np.random.Generator, size: int) -> np.ndarray:
    colour = sample_colour(rng, str(rng.choice(patterns.NAMES)))
    weave = texture.weave(rng, size, size) if rng.random() < 0.5 else texture.fine_noise(rng, size, size)
    image = colour * (1 + rng.uniform(0, 0.06) * weave)[..., None]
    if rng.random() < 0.5:
        image = image * photo.folds(rng, size, size, rng.uniform(0.05, 0.35))
    if rng.random() < 0.2:
        image = image + rng.uniform(0.3, 0.9) * photo.gloss(rng, size, size) * (1 - image)
    return image


def natural(rng: np.random.Generator, size: int) -> np.ndarray:
    """Tinted texture photos from scikit-image (brick, grass, gravel, ...) or generated wood, marble, fur."""
    kind = rng.random()
    if kind < 0.5:
        grey = texture.material_crop(rng, size, size, ("brick", "grass", "gravel", "moon"))
    else:
        yy, xx = photo.coordinates(size, size)
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        if kind < 0.7:  # wood: rings stretched into grain, with knots of turbulence
            turbulence = photo.smooth_field(rng, size, size, int(rng.integers(2, 6)))
            grey = np.sin((u + rng.uniform(0.1, 0.4) * turbulence) * rng.uniform(15, 60))
            grey = grey + 0.5 * rng.normal(0, 1, (size, size)) * rng.uniform(0, 0.5)
        elif kind < 0.85:  # marble and stone: veins through turbulent noise
            turbulence = sum(photo.smooth_field(rng, size, size, c) / (i + 1) for i, c in enumerate((3, 7, 15)))
            grey = np.abs(np.sin(u * rng.uniform(3, 10) + 3 * turbulence)) ** rng.uniform(0.2, 0.6)
        else:  # fur or grass blades: short streaks in one direction
            streaks = rng.normal(0, 1, (size, size)).astype(np.float32)
            from PIL import Image, ImageFilter

            pil = Image.fromarray(photo.to_uint8((streaks[..., None] * 0.25 + 0.5).repeat(3, -1)))
            pil = pil.filter(ImageFilter.GaussianBlur(1)).rotate(float(np.degrees(angle)), resample=Image.Resampling.BILINEAR)
            grey = np.asarray(pil.resize((size, size * 4)).crop((0, 0, size, size)), dtype=np.float32)[..., 0]
            grey = grey + 40 * photo.smooth_field(rng, size, size, 4)
    grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-6)
    dark_name, light_name = NATURAL_TINTS[int(rng.integers(len(NATURAL_TINTS)))]
    dark, light = sample_colour(rng, dark_name) * 0.8, sample_colour(rng, light_name)
    return dark + grey[..., None] * (light - dark)


GENERATORS = {
    "solid": solid,
    "stripes": patterns.stripes,
    "checks": patterns.checks,
    "polka dots": patterns.polka_dots,
    "floral": prints.floral,
    "geometric": patterns.geometric,
    "text": prints.text,
    "natural texture": natural,
}
assert tuple(GENERATORS) == THEME_LABELS


def patch(rng: np.random.Generator, label: str, size: int, resize: str = "bilinear") -> np.ndarray:
    """One uint8 size×size×3 patch of theme `label`, as Pinpoint's crop would hand it over."""
    window = int(rng.integers(size, size * 5 // 3 + 1))
    image = GENERATORS[label](rng, window).astype(np.float32)
    if rng.random() < 0.12:  # digital product images, scans and screenshots are clean
        return photo.resize_like_crop(photo.to_uint8(image), size, resize)
    if label != "solid" and rng.random() < 0.3:
        image = image * photo.folds(rng, window, window, rng.uniform(0.05, 0.3))
    image = image * photo.lighting(rng, window, window, rng.uniform(0, 0.3))
    if rng.random() < 0.2:
        image = image * photo.shadow(rng, window, window, rng.uniform(0.2, 0.5), keep_centre=False)
    image = photo.colour_cast(rng, image, 0.08)
    pixels = photo.camera(rng, image, blur=1.6, noise=0.03, jpeg=0.6)
    return photo.resize_like_crop(pixels, size, resize)


def dataset(seed: int, per_label: int, size: int, resize: str = "bilinear",
            training: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """per_label patches of every theme, uint8 [N, size, size, 3] and int labels [N], shuffled
    (training and held-out sets differ only by seed)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(THEME_LABELS)), per_label)
    rng.shuffle(labels)
    images = np.stack([patch(rng, THEME_LABELS[k], size, resize) for k in labels])
    return images, labels.astype(np.int32)
