"""Repeating prints drawn from coordinates: stripes, checks, dots and geometric shapes.

Every generator takes (rng, size) and returns float32 size×size×3 in 0..1. Coordinates are in
pixels of the *model input* scale (pattern periods of a few to a few dozen input pixels), turned
by a random angle and optionally bent by a smooth displacement, as a print on folded cloth is.
"""

from __future__ import annotations

import numpy as np

from service.tools.train.palette import SURFACES, sample_colour
from service.tools.train.photo import smooth_field

NAMES = tuple(SURFACES)


def palette(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` colours with different names, so neighbouring bands or shapes stay distinguishable."""
    names = rng.choice([n for n in NAMES if n not in ("silver", "gold", "rose gold", "copper")], count, replace=False)
    return np.stack([sample_colour(rng, str(name)) for name in names])


def frame(rng: np.random.Generator, size: int, scale: float, angle: float | None = None,
          bend: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rotated pixel coordinates (u, v) in units of `scale`, bent by up to `bend` pixels."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi) if angle is None else angle
    u = np.cos(angle) * xs + np.sin(angle) * ys
    v = -np.sin(angle) * xs + np.cos(angle) * ys
    bend = (rng.uniform(0, 6) if rng.random() < 0.5 else 0.0) if bend is None else bend
    if bend:
        u = u + bend * smooth_field(rng, size, size, 3) * size / 96
        v = v + bend * smooth_field(rng, size, size, 3) * size / 96
    return u / scale, v / scale


def straight_angle(rng: np.random.Generator) -> float:
    """Prints are usually photographed square-on: mostly 0/90 degrees, sometimes tilted."""
    base = rng.choice([0.0, np.pi / 2]) if rng.random() < 0.7 else rng.uniform(0, np.pi)
    return float(base + rng.normal(0, 0.08))


def band_index(position: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Which band of a repeating sequence of `widths` each position falls in."""
    edges = np.cumsum(widths)
    phase = np.mod(position, edges[-1])
    return np.searchsorted(edges, phase, side="right")


def stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    count = int(rng.integers(2, 5))
    colours = palette(rng, count)
    scale = size / 96
    if rng.random() < 0.25:  # pinstripes: thin lines on a wide ground
        widths = np.array([rng.uniform(6, 20), rng.uniform(1, 2.5)])
        colours = colours[:2]
    else:
        widths = rng.uniform(2, 16, count) * rng.uniform(0.6, 1.6)
    u, _ = frame(rng, size, scale, straight_angle(rng) if rng.random() < 0.8 else None)
    return colours[band_index(u + rng.uniform(0, 100), widths)]


def checks(rng: np.random.Generator, size: int) -> np.ndarray:
    scale = size / 96
    u, v = frame(rng, size, scale, straight_angle(rng) if rng.random() < 0.85 else rng.uniform(-0.35, 0.35))
    kind = rng.random()
    if kind < 0.35:  # checkerboard / buffalo check: hard squares
        period = rng.uniform(5, 30)
        colours = palette(rng, 2)
        return colours[((np.floor(u / period) + np.floor(v / period)) % 2).astype(int)]
    if kind < 0.7:  # gingham: one band colour over a ground, darker where the bands cross
        period = rng.uniform(5, 22)
        ground, band = palette(rng, 2)
        across = (np.mod(u, period) < period / 2).astype(np.float32)[..., None]
        down = (np.mod(v, period) < period / 2).astype(np.float32)[..., None]
        coverage = (across + down) / 2
        return ground * (1 - coverage) + band * coverage
    # tartan: several bands each way; warp and weft threads average where they cross
    count = int(rng.integers(2, 5))
    colours = palette(rng, count)
    widths = rng.uniform(2, 14, count)
    across = colours[band_index(u, widths)]
    down = colours[band_index(v, widths)]
    mix = rng.uniform(0.35, 0.65)
    return mix * across + (1 - mix) * down


def polka_dots(rng: np.random.Generator, size: int) -> np.ndarray:
    scale = size / 96
    spacing = rng.uniform(7, 28)
    radius = spacing * rng.uniform(0.14, 0.36)
    u, v = frame(rng, size, scale, straight_angle(rng) if rng.random() < 0.6 else None, bend=rng.uniform(0, 3))
    row = np.floor(v / spacing)
    if rng.random() < 0.5:  # staggered rows, the classic polka layout
        u = u + (row % 2) * spacing / 2
    col = np.floor(u / spacing)
    du = np.mod(u, spacing) - spacing / 2
    dv = np.mod(v, spacing) - spacing / 2
    if rng.random() < 0.35:  # scattered: each cell's dot jittered (hash of the cell index)
        jitter = spacing / 2 - radius
        seed = rng.uniform(0, 1000)
        du = du + jitter * np.sin(col * 12.9898 + row * 78.233 + seed)
        dv = dv + jitter * np.sin(col * 39.3468 + row * 11.135 + seed * 1.7)
    inside = (np.sqrt(du ** 2 + dv ** 2) < radius)
    ground, dot, second = palette(rng, 3)
    image = np.where(inside[..., None], dot, ground)
    if rng.random() < 0.2:  # two dot colours alternating
        image = np.where((inside & ((col + row) % 2 == 1))[..., None], second, image)
    return image


def geometric(rng: np.random.Generator, size: int) -> np.ndarray:
    scale = size / 96
    kind = int(rng.integers(6))
    u, v = frame(rng, size, scale, straight_angle(rng))
    period = rng.uniform(8, 30)
    colours = palette(rng, 4)
    if kind == 0:  # chevron / zigzag bands
        zig = v + np.abs(np.mod(u, period) - period / 2) * rng.uniform(0.8, 2.0)
        return colours[band_index(zig, rng.uniform(3, 12, int(rng.integers(2, 4))))]
    if kind == 1:  # triangles: each square cell cut on its diagonal, the two halves always differ
        cu, cv = np.floor(u / period), np.floor(v / period)  # (or it would be a checkerboard: checks)
        upper = (np.mod(u, period) > np.mod(v, period)).astype(int)
        return colours[((cu * 3 + cv * 5 + upper) % int(rng.integers(3, 5))).astype(int)]
    if kind == 2:  # diamonds / argyle: an elongated rotated lattice
        stretch = rng.uniform(1.3, 2.0)
        a, b = (u + v * stretch) / period, (u - v * stretch) / period
        return colours[((np.floor(a) + np.floor(b)) % 2).astype(int) + 2 * (rng.random() < 0.5)]
    if kind == 3:  # honeycomb: nearest centre of two offset lattices; edges where both are equally near
        tall = period * np.sqrt(3)
        da = np.hypot(np.mod(u, period) - period / 2, np.mod(v, tall) - tall / 2)
        db = np.hypot(np.mod(u + period / 2, period) - period / 2, np.mod(v + tall / 2, tall) - tall / 2)
        if rng.random() < 0.5:
            return colours[(np.abs(da - db) < period * rng.uniform(0.05, 0.15)).astype(int)]
        return colours[(da < db).astype(int) + 2 * (np.floor(u / period) % 2 == 0)]
    if kind == 4:  # concentric circles or squares
        cy, cx = rng.uniform(0, size / scale, 2)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / scale
        radial = (np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2) if rng.random() < 0.5
                  else np.maximum(np.abs(ys - cy), np.abs(xs - cx)))
        return colours[band_index(radial, rng.uniform(3, 10, int(rng.integers(2, 4))))]
    # scattered hard-edged shapes (triangles, squares, bars) on a ground: "Memphis" prints
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (size, size), tuple(int(c * 255) for c in colours[0]))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(8, 30))):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(4, 16) * scale
        sides = int(rng.choice([3, 4, 4, 6]))
        turn = rng.uniform(0, 2 * np.pi)
        corners = [(cx + r * np.cos(turn + 2 * np.pi * k / sides), cy + r * np.sin(turn + 2 * np.pi * k / sides))
                   for k in range(sides)]
        fill = tuple(int(c * 255) for c in colours[int(rng.integers(1, 4))])
        if rng.random() < 0.3:
            draw.line(corners + corners[:1], fill=fill, width=max(1, int(2 * scale)))
        else:
            draw.polygon(corners, fill=fill)
    return np.asarray(canvas, dtype=np.float32) / 255
