"""Metal surfaces: what makes silver more than grey, and gold more than yellow.

A polished or brushed metal has almost no colour of its own in a photo; it shows a stretched, warped
reflection of its surroundings (dark bands next to near-white ones), tinted by the metal, with
specular highlights that saturate towards white. That contrast structure is what the model must learn.
"""

from __future__ import annotations

import numpy as np

from service.tools.train.photo import coordinates, smooth_field


def reflection_profile(rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    """Brightness along the surface: a random piecewise-linear curve with dark and bright bands."""
    knots = int(rng.integers(4, 9))
    positions = np.sort(rng.uniform(-1.6, 1.6, knots))
    levels = rng.uniform(0.15, 1.0, knots)
    levels[int(rng.integers(knots))] = rng.uniform(1.15, 1.6)  # at least one specular band
    if rng.random() < 0.7:
        levels[int(rng.integers(knots))] = rng.uniform(0.08, 0.3)  # and a dark reflection
    return np.interp(u, positions, levels).astype(np.float32)


def render(rng: np.random.Generator, body: np.ndarray, h: int, w: int) -> np.ndarray:
    """A metal patch of body colour `body` (RGB 0..1), H×W×3, values may exceed 1 before clipping."""
    yy, xx = coordinates(h, w)
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * xx + np.sin(angle) * yy
    across = -np.sin(angle) * xx + np.cos(angle) * yy
    shape = rng.random()
    if shape < 0.4:  # cylinder or flat sheet: bands run straight
        u = along * rng.uniform(0.6, 1.6)
    elif shape < 0.75:  # bowl or sphere: bands bend around a centre
        cy, cx = rng.uniform(-1, 1, 2)
        u = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) * rng.uniform(0.8, 2.0) - 0.8
    else:  # crumpled or embossed: the reflection is warped
        u = along + 0.5 * smooth_field(rng, h, w, int(rng.integers(2, 5)))
    brightness = reflection_profile(rng, u)
    if rng.random() < 0.5:  # brushed finish: fine streaks along the brushing direction
        streaks = np.sin(across * rng.uniform(40, 120) + rng.uniform(0, 6)) * rng.uniform(0.02, 0.08)
        brightness = brightness * (1 + streaks + rng.normal(0, 0.03, (h, w)).astype(np.float32))
    brightness = brightness[..., None]
    highlight = 0.85 + 0.15 * body / max(float(body.max()), 1e-3)  # near white, faintly metal-tinted
    lit = np.minimum(brightness, 1.0) * body
    if rng.random() < 0.4:
        # Polished metal shows its surroundings in colour: a spoon on a red saucer in warm light is
        # red, brown and cream in bands, yet still silver: the bands, contrast and highlights say metal.
        from service.tools.train.palette import sample_colour

        names = ("red", "orange", "brown", "white", "black", "blue", "green", "neutral", "grey", "yellow")
        knots = int(rng.integers(3, 7))
        colours = np.stack([sample_colour(rng, str(rng.choice(names))) for _ in range(knots)])
        positions = np.sort(rng.uniform(-1.6, 1.6, knots))
        warped = u + 0.3 * smooth_field(rng, h, w, 3)
        surround = np.stack([np.interp(warped, positions, colours[:, c]) for c in range(3)], axis=-1)
        surround = surround * (0.75 + 0.25 * body / max(float(body.max()), 1e-3))
        share = rng.uniform(0.35, 0.85)
        lit = np.minimum(brightness, 1.0) * ((1 - share) * body + share * surround)
    over = np.clip((brightness - 1.0) / 0.5, 0, 1)
    image = lit + over * (highlight - lit)
    if rng.random() < 0.6:
        # The surroundings show in the reflection: chrome next to a red saucer reflects red and
        # brown, yet is still silver. Sometimes faint, sometimes a whole coloured band.
        tint = 1 + rng.uniform(0.05, 0.3) * np.stack([smooth_field(rng, h, w, 2) for _ in range(3)], axis=-1)
        image = image * tint
        if rng.random() < 0.4:
            band = (np.abs(u - rng.uniform(-1, 1)) < rng.uniform(0.1, 0.4))[..., None]
            reflected = rng.uniform(0.1, 0.8, 3).astype(np.float32) * np.minimum(brightness, 1.0)
            image = np.where(band, 0.5 * image + 0.5 * reflected, image)
    return image.astype(np.float32)
