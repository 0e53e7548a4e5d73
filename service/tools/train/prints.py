"""Drawn prints: flowers and text. Pillow draws them (polygons, the font Pillow ships), numpy not.

Both return float32 size×size×3 in 0..1. Only Pillow's own embedded font is used, so training is
the same on any machine, fonts installed or not.
"""

from __future__ import annotations

import functools
import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from service.tools.train.palette import sample_colour

FLOWER_COLOURS = ("red", "pink", "purple", "yellow", "white", "orange", "blue")
LEAF_COLOURS = ("green", "green", "brown")
GROUND_COLOURS = ("white", "black", "blue", "green", "pink", "neutral", "yellow", "red", "purple", "grey")


def rgb255(colour: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(c * 255 + 0.5) for c in np.clip(colour, 0, 1))


def _flower(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, radius: float,
            petal: np.ndarray, heart: np.ndarray) -> None:
    petals = int(rng.integers(4, 9))
    turn = rng.uniform(0, 2 * np.pi)
    roundness = rng.uniform(0.3, 0.7)
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    r = radius * (1 - roundness + roundness * np.abs(np.cos(petals * (angles + turn) / 2)))
    draw.polygon(list(zip(cx + r * np.cos(angles), cy + r * np.sin(angles))), fill=rgb255(petal))
    if rng.random() < 0.85:
        h = radius * rng.uniform(0.15, 0.35)
        draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=rgb255(heart))


def _leaf(draw: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, length: float,
          colour: np.ndarray) -> None:
    turn = rng.uniform(0, 2 * np.pi)
    t = np.linspace(-1, 1, 24)
    half_width = length * rng.uniform(0.2, 0.4) * np.sqrt(1 - t ** 2)
    along = np.concatenate([t, t[::-1]]) * length
    across = np.concatenate([half_width, -half_width[::-1]])
    xs = cx + along * np.cos(turn) - across * np.sin(turn)
    ys = cy + along * np.sin(turn) + across * np.cos(turn)
    draw.polygon(list(zip(xs, ys)), fill=rgb255(colour))


def floral(rng: np.random.Generator, size: int) -> np.ndarray:
    scale = size / 96
    ground = sample_colour(rng, str(rng.choice(GROUND_COLOURS)))
    canvas = Image.new("RGB", (size, size), rgb255(ground))
    draw = ImageDraw.Draw(canvas)
    petal_colours = [sample_colour(rng, str(name)) for name in rng.choice(FLOWER_COLOURS, 3)]
    heart = sample_colour(rng, str(rng.choice(("yellow", "orange", "brown", "white", "black"))))
    leaf = sample_colour(rng, str(rng.choice(LEAF_COLOURS)))
    radius = rng.uniform(5, 22) * scale
    count = int(np.clip(rng.uniform(0.3, 0.7) * (size / radius) ** 2, 4, 80))
    for _ in range(count):
        cx, cy = rng.uniform(-radius, size + radius, 2)
        if rng.random() < 0.6:
            _leaf(draw, rng, cx + rng.normal(0, radius), cy + rng.normal(0, radius), radius * rng.uniform(0.6, 1.3),
                  leaf)
        _flower(draw, rng, cx, cy, radius * rng.uniform(0.6, 1.3), petal_colours[int(rng.integers(3))], heart)
    return np.asarray(canvas, dtype=np.float32) / 255


@functools.lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _word(rng: np.random.Generator) -> str:
    letters = string.ascii_lowercase if rng.random() < 0.7 else string.ascii_uppercase
    return "".join(rng.choice(list(letters), int(rng.integers(1, 10))))


def text(rng: np.random.Generator, size: int) -> np.ndarray:
    scale = size / 96
    paper, ink = _contrasting(rng)
    canvas = Image.new("RGB", (size * 2, size * 2), rgb255(paper))  # drawn larger, then rotated and cut
    draw = ImageDraw.Draw(canvas)
    height = int(rng.uniform(7, 30) * scale)
    y = rng.uniform(-height, 0)
    while y < size * 2:
        line_height = int(height * rng.uniform(0.8, 1.25)) if rng.random() < 0.3 else height
        x = rng.uniform(-size, 0)
        words = " ".join(_word(rng) for _ in range(int(rng.integers(4, 30))))
        colour = ink if rng.random() < 0.85 else sample_colour(rng, str(rng.choice(("red", "blue", "black", "green"))))
        draw.text((x, y), words, fill=rgb255(colour), font=font(max(6, line_height)))
        y += line_height * rng.uniform(1.1, 1.8)
    angle = rng.normal(0, 4) if rng.random() < 0.8 else rng.uniform(-30, 30)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=rgb255(paper))
    left = int(rng.integers(0, size))
    top = int(rng.integers(0, size))
    return np.asarray(canvas.crop((left, top, left + size, top + size)), dtype=np.float32) / 255


def _contrasting(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paper and ink: mostly dark on light (pages, labels), sometimes light on dark or coloured."""
    choice = rng.random()
    if choice < 0.6:
        return sample_colour(rng, str(rng.choice(("white", "neutral", "grey", "yellow")))), sample_colour(rng, "black")
    if choice < 0.8:
        return sample_colour(rng, str(rng.choice(("black", "blue", "red", "green")))), sample_colour(rng, "white")
    return sample_colour(rng, str(rng.choice(("red", "orange", "yellow", "pink", "blue")))), \
        sample_colour(rng, str(rng.choice(("black", "white"))))


def handwriting(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pen on paper: joined loops and strokes in rows, thin and sparse, often on ruled or grey paper
    (notes, a signature, a form filled in by hand)."""
    scale = size / 96
    paper = sample_colour(rng, str(rng.choice(("white", "grey", "neutral", "white"))))
    ink = sample_colour(rng, str(rng.choice(("black", "black", "blue", "grey"))))
    canvas = Image.new("RGB", (size * 2, size * 2), rgb255(paper))
    draw = ImageDraw.Draw(canvas)
    row = rng.uniform(12, 32) * scale
    if rng.random() < 0.5:  # ruled lines
        rule = sample_colour(rng, str(rng.choice(("blue", "grey", "black"))))
        for y in np.arange(rng.uniform(0, row), size * 2, row):
            draw.line([(0, y), (size * 2, y)], fill=rgb255(0.6 * paper + 0.4 * rule), width=1)
    width = max(1, int(round(rng.uniform(0.8, 2.2) * scale)))
    letter = row * rng.uniform(0.25, 0.5)
    y = rng.uniform(0, row)
    while y < size * 2:
        x = rng.uniform(-size / 2, size / 4)
        while x < size * 2:
            if rng.random() < 0.75:  # a word: a joined stroke of loops
                steps = int(rng.integers(6, 30))
                t = np.arange(steps * 6) / 6.0
                xs = x + t * letter * rng.uniform(0.5, 0.9) + letter * 0.4 * np.sin(t * 2 * np.pi + rng.uniform(0, 6))
                ys = y - (letter * (0.5 + 0.5 * np.cos(t * 2 * np.pi * rng.uniform(0.7, 1.3)))
                          * rng.uniform(0.5, 1.2, len(t)))
                draw.line(list(zip(xs, ys)), fill=rgb255(ink), width=width, joint="curve")
                x = xs[-1] + letter * rng.uniform(1, 3)
            else:  # a printed word in between
                draw.text((x, y - letter * 1.5), _word(rng), fill=rgb255(ink), font=font(max(6, int(letter * 2))))
                x += letter * rng.uniform(4, 10)
        y += row * (1 if rng.random() < 0.7 else 2)
    canvas = canvas.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BILINEAR, fillcolor=rgb255(paper))
    left, top = int(rng.integers(0, size)), int(rng.integers(0, size))
    return np.asarray(canvas.crop((left, top, left + size, top + size)), dtype=np.float32) / 255


def _shaded_petal(draw: ImageDraw.ImageDraw, cx: float, cy: float, angle: float, length: float, width: float,
                  colour: np.ndarray, depth: float) -> None:
    """A petal as stacked ellipse slices, dark at its base and light at its tip (cupped, lit)."""
    for k in range(6):
        t = k / 5
        shade = np.clip(colour * (1 - depth * (1 - t)) + 0.15 * t * (1 - colour), 0, 1)
        r = length * (1 - 0.55 * t)
        ox, oy = cx + np.cos(angle) * length * 0.55 * t, cy + np.sin(angle) * length * 0.55 * t
        points = []
        for a in np.linspace(0, 2 * np.pi, 18, endpoint=False):
            u, v = np.cos(a) * r * 0.5, np.sin(a) * width * (1 - 0.4 * t) * 0.5
            points.append((ox + np.cos(angle) * (u + r * 0.5) - np.sin(angle) * v,
                           oy + np.sin(angle) * (u + r * 0.5) + np.cos(angle) * v))
        draw.polygon(points, fill=rgb255(shade), outline=rgb255(colour * 0.45) if k == 0 else None,
                     width=max(1, int(width * 0.06)) if k == 0 else 1)


def big_flower(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photographed bloom filling the window: rings of shaded petals round a centre (dahlia, rose,
    daisy), sometimes a second bloom, on a blurred ground."""
    ground = sample_colour(rng, str(rng.choice(("green", "black", "blue", "white", "neutral", "brown"))))
    canvas = Image.new("RGB", (size, size), rgb255(ground))
    draw = ImageDraw.Draw(canvas)
    petal = sample_colour(rng, str(rng.choice(FLOWER_COLOURS + ("orange", "pink"))))
    blooms = [(rng.uniform(-0.2, 1.2) * size, rng.uniform(-0.2, 1.2) * size, size * rng.uniform(0.5, 1.4))]
    if rng.random() < 0.4:
        blooms.append((rng.uniform(0, 1) * size, rng.uniform(0, 1) * size, size * rng.uniform(0.3, 0.8)))
    depth = rng.uniform(0.2, 0.6)
    for cx, cy, radius in blooms:
        rings = int(rng.integers(2, 6))
        for ring in range(rings):
            r = radius * (1 - ring / (rings + 0.5))
            count = int(rng.integers(8, 20))
            turn = rng.uniform(0, 2 * np.pi)
            for k in range(count):
                angle = turn + 2 * np.pi * k / count + rng.normal(0, 0.05)
                _shaded_petal(draw, cx, cy, angle, r, r * rng.uniform(0.25, 0.5) * 2 * np.pi / count * 1.6,
                              np.clip(petal * rng.uniform(0.85, 1.1), 0, 1), depth)
        heart = radius * rng.uniform(0.05, 0.15)
        draw.ellipse([cx - heart, cy - heart, cx + heart, cy + heart],
                     fill=rgb255(sample_colour(rng, str(rng.choice(("yellow", "orange", "red", "brown"))))))
    return np.asarray(canvas, dtype=np.float32) / 255
