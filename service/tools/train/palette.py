"""The colour names Pinpoint's colour model answers, and where each lives in HSV.

These ranges are the model's definition of every label; the model card repeats them. Ranges of
neighbouring labels leave small gaps, so training never shows the same colour under two names.
Hue is in degrees (0..360, may wrap below 0), saturation and value in 0..1.
"""

from __future__ import annotations

import colorsys

import numpy as np

COLOR_LABELS = (
    "black", "white", "grey", "silver", "gold", "rose gold", "copper", "red", "orange", "yellow",
    "green", "blue", "purple", "pink", "brown", "neutral", "multi-colour", "black and white",
)

# label -> list of (hue range, saturation range, value range); one range is picked at random.
# Metals list the *body* colour; the highlights and reflections come from metal.py.
SURFACES: dict[str, list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]]] = {
    "black": [((0, 360), (0.0, 0.7), (0.0, 0.16)), ((0, 360), (0.0, 0.3), (0.0, 0.2))],
    "white": [((0, 360), (0.0, 0.07), (0.86, 1.0)), ((20, 60), (0.0, 0.12), (0.85, 1.0)),
              ((190, 240), (0.0, 0.1), (0.85, 1.0))],
    "grey": [((0, 360), (0.0, 0.08), (0.3, 0.78)), ((180, 240), (0.03, 0.12), (0.35, 0.7)),
             ((0, 40), (0.04, 0.12), (0.35, 0.75))],  # warm greys: concrete, stone
    "silver": [((0, 360), (0.0, 0.06), (0.62, 0.88))],
    "gold": [((40, 50), (0.5, 0.8), (0.75, 0.95))],
    "rose gold": [((0, 20), (0.22, 0.4), (0.78, 0.95))],
    "copper": [((16, 26), (0.6, 0.85), (0.6, 0.85))],
    # Hue 10 is where a dark saturated red turns brown (a terracotta cup is still "red"); a deeply
    # saturated vermilion (a red cup in warm light, hue up to 13) is still red, a paler one orange.
    "red": [((-10, 9), (0.65, 1.0), (0.4, 1.0)), ((-8, 8), (0.7, 1.0), (0.26, 0.4)),
            ((9, 13), (0.86, 1.0), (0.42, 0.8))],
    # Orange includes the paler, redder orange of a spacesuit (hue 11-15) and light peach (a petal).
    "orange": [((14, 36), (0.65, 1.0), (0.74, 1.0)), ((11, 15), (0.6, 0.82), (0.78, 1.0)),
               ((18, 32), (0.45, 0.65), (0.88, 1.0))],
    "yellow": [((44, 60), (0.55, 1.0), (0.78, 1.0)), ((48, 58), (0.35, 0.55), (0.9, 1.0))],
    "green": [((75, 160), (0.35, 1.0), (0.3, 1.0)), ((62, 75), (0.5, 1.0), (0.3, 0.75))],
    # Navy in photographs drifts towards violet (a flag's canton measures hue ~257).
    "blue": [((180, 250), (0.4, 1.0), (0.25, 1.0)), ((195, 235), (0.25, 0.4), (0.7, 1.0)),
             ((220, 262), (0.5, 1.0), (0.18, 0.45))],
    "purple": [((264, 295), (0.35, 1.0), (0.25, 0.9)), ((262, 285), (0.2, 0.35), (0.75, 0.95))],
    "pink": [((300, 340), (0.35, 1.0), (0.7, 1.0)), ((-15, 12), (0.2, 0.42), (0.9, 1.0))],
    # Light brown: tan, cardboard and light wood (lighter than this, or more saturated, is orange).
    "brown": [((13, 38), (0.42, 0.95), (0.19, 0.68)), ((20, 40), (0.32, 0.6), (0.5, 0.72)),
              ((8, 13), (0.5, 0.95), (0.15, 0.38)), ((18, 34), (0.4, 0.62), (0.66, 0.84))],
    "neutral": [((22, 50), (0.14, 0.3), (0.68, 0.95)), ((18, 45), (0.14, 0.25), (0.45, 0.68))],
}

# Saturated hues that stay recognisable next to each other, for multi-colour patches.
MULTI_HUES = ("red", "orange", "yellow", "green", "blue", "purple", "pink")


def hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue % 360) / 360.0, saturation, value), dtype=np.float32)


def sample_colour(rng: np.random.Generator, label: str) -> np.ndarray:
    """An RGB body colour (0..1) that a person would call `label`."""
    ranges = SURFACES[label]
    (h0, h1), (s0, s1), (v0, v1) = ranges[int(rng.integers(len(ranges)))]
    return hsv_to_rgb(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def rgb_to_hsv(rgb: np.ndarray) -> tuple[float, float, float]:
    hue, saturation, value = colorsys.rgb_to_hsv(*[float(c) for c in rgb])
    return hue * 360, saturation, value
