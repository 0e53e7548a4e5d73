"""Generated training patches for the pattern model: the larger window around a point of a product photo.

A pattern patch is a print or surface drawn at the window size a crop would take (96 to 160 px here),
put under photographic light (gradients, folds, shadow, colour cast), blurred, noised, JPEG'd and
resized to 96×96 with the Pillow filter Pinpoint uses.
"""

from __future__ import annotations

import numpy as np

from service.tools.train import generate, patterns, photo, prints, texture
from service.tools.train.palette import sample_colour
from service.tools.train.pattern_labels import PATTERN_LABELS

NATURAL_TINTS = (("brown", "neutral"), ("grey", "white"), ("green", "brown"), ("brown", "black"),
                 ("grey", "black"), ("red", "brown"), ("neutral", "white"), ("green", "black"))


def solid(rng: np.random.Generator, size: int) -> np.ndarray:
    """One colour as a photo shows it: weave or grain, folds and creases, seams, a highlight, a
    gradient of light, and often the edge of something else or a small object in the window
    (a suit by a helmet, a badge, a button): the surface at the point is still plain."""
    colour = sample_colour(rng, str(rng.choice(patterns.NAMES)))
    kind = rng.random()
    weave = texture.weave(rng, size, size) if kind < 0.4 else texture.fine_noise(rng, size, size) if kind < 0.8 \
        else texture.scanned(rng, size, size)
    image = colour * (1 + rng.uniform(0, 0.06 if kind < 0.8 else 0.03) * weave)[..., None]
    if rng.random() < 0.6:
        image = image * photo.folds(rng, size, size, rng.uniform(0.05, 0.5))
    if rng.random() < 0.25:  # creases: a few sharp dark folds of a garment
        for _ in range(int(rng.integers(1, 4))):
            image = image * _crease(rng, size, rng.uniform(0.2, 0.55))
    if rng.random() < 0.25:  # seams and panel lines
        image = _lines(rng, image, colour * rng.uniform(0.4, 0.8), int(rng.integers(1, 3)), rng.uniform(0.6, 2.0))
    if rng.random() < 0.3:
        image = image + rng.uniform(0.3, 0.9) * photo.gloss(rng, size, size) * (1 - image)
    if rng.random() < 0.3:  # a sky or a backdrop: a smooth gradient
        image = image * photo.lighting(rng, size, size, rng.uniform(0.2, 0.5))
    if rng.random() < 0.45:
        image = _beside(rng, image, size)
    return image


def _crease(rng: np.random.Generator, size: int, depth: float) -> np.ndarray:
    yy, xx = photo.coordinates(size, size)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy + 0.15 * photo.smooth_field(rng, size, size, 3) - rng.uniform(-0.8, 0.8)
    width = rng.uniform(0.02, 0.12)
    return (1 - depth * np.exp(-(u / width) ** 2)).astype(np.float32)[..., None]


def _lines(rng: np.random.Generator, image: np.ndarray, ink: np.ndarray, count: int, width: float) -> np.ndarray:
    from PIL import Image, ImageDraw

    size = image.shape[0]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(count):
        (x0, y0), (x1, y1) = rng.uniform(-0.2, 1.2, (2, 2)) * size
        draw.line([(x0, y0), (x1, y1)], fill=255, width=max(1, int(width * size / 96)))
    coverage = (np.asarray(mask, dtype=np.float32) / 255)[..., None]
    return image * (1 - coverage) + ink * coverage


def _beside(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """Something else in the window, away from its centre: the edge of another surface (up to a
    third of the window) or a small object (a badge, a button, a glove ring)."""
    yy, xx = photo.coordinates(size, size)
    other = sample_colour(rng, str(rng.choice(patterns.NAMES)))
    other_image = other * photo.lighting(rng, size, size, rng.uniform(0, 0.4))
    if rng.random() < 0.3:
        other_image = other_image + rng.uniform(0.3, 0.9) * photo.gloss(rng, size, size) * (1 - other_image)
    if rng.random() < 0.6:
        angle = rng.uniform(0, 2 * np.pi)
        distance = np.cos(angle) * xx + np.sin(angle) * yy + 0.1 * photo.smooth_field(rng, size, size, 2)
        mask = distance > rng.uniform(0.35, 0.9)
    else:
        cy, cx = rng.uniform(0.4, 0.9) * rng.choice([-1, 1], 2)
        r = rng.uniform(0.1, 0.3)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    return np.where(mask[..., None], other_image, image)


def natural(rng: np.random.Generator, size: int) -> np.ndarray:
    """Nature's irregular surfaces: foliage, real wood and fur (natural_photo), or tinted texture
    photos from scikit-image (brick, grass, gravel, ...) and generated wood, marble, fur."""
    if rng.random() < 0.45:
        return natural_photo(rng, size)
    kind = rng.random()
    if kind < 0.5:
        grey = texture.material_crop(rng, size, size, ("brick", "grass", "gravel", "moon", "cell"))
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
            pil = pil.filter(ImageFilter.GaussianBlur(1)).rotate(float(np.degrees(angle)),
                                                                 resample=Image.Resampling.BILINEAR)
            grey = np.asarray(pil.resize((size, size * 4)).crop((0, 0, size, size)), dtype=np.float32)[..., 0]
            grey = grey + 40 * photo.smooth_field(rng, size, size, 4)
    grey = (grey - grey.min()) / max(float(np.ptp(grey)), 1e-6)
    dark_name, light_name = NATURAL_TINTS[int(rng.integers(len(NATURAL_TINTS)))]
    dark, light = sample_colour(rng, dark_name) * 0.8, sample_colour(rng, light_name)
    return dark + grey[..., None] * (light - dark)


def natural_photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """Foliage (leaves of several greens and browns with dark gaps), wood with soft grain and
    scratches, and fur with tabby markings, each in its own natural colours."""
    from PIL import Image, ImageDraw, ImageFilter

    kind = rng.random()
    if kind < 0.4:  # foliage: many small leaves over a dark ground
        canvas = Image.new("RGB", (size, size), prints.rgb255(sample_colour(rng, "black")))
        draw = ImageDraw.Draw(canvas)
        names = [str(n) for n in rng.choice(("green", "green", "green", "brown", "yellow", "neutral"), 3)]
        scale = rng.uniform(1.5, 6) * size / 96
        for _ in range(int(size * size / scale ** 2 * rng.uniform(0.3, 0.8))):
            cx, cy = rng.uniform(0, size, 2)
            colour = sample_colour(rng, names[int(rng.integers(3))]) * rng.uniform(0.4, 1.1)
            r = scale * rng.uniform(0.5, 1.5)
            turn = rng.uniform(0, np.pi)
            draw.ellipse([cx - r, cy - r * 0.5, cx + r, cy + r * 0.5], fill=prints.rgb255(colour)) if turn < 1.5 \
                else draw.ellipse([cx - r * 0.5, cy - r, cx + r * 0.5, cy + r], fill=prints.rgb255(colour))
        return np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2))), dtype=np.float32) / 255
    yy, xx = photo.coordinates(size, size)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy
    if kind < 0.7:  # wood: soft grain of varying width, scratches, in wood colours
        turbulence = photo.smooth_field(rng, size, size, int(rng.integers(2, 5)))
        grain = np.sin((u + rng.uniform(0.05, 0.3) * turbulence) * rng.uniform(20, 90))
        grain = 0.6 * grain + 0.4 * np.sin((u + 0.2 * turbulence) * rng.uniform(90, 200))
        grey = 0.5 + rng.uniform(0.1, 0.3) * grain + 0.15 * photo.smooth_field(rng, size, size, 3)
        pil = Image.fromarray(photo.to_uint8(np.repeat(grey[..., None], 3, axis=-1)))
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5)))
        grey = np.asarray(pil, dtype=np.float32)[..., 0] / 255
        dark, light = (sample_colour(rng, "brown") * rng.uniform(0.5, 0.9),
                       sample_colour(rng, str(rng.choice(("brown", "orange", "neutral")))))
        image = dark + grey[..., None] * (light - dark)
        if rng.random() < 0.5:
            image = _lines(rng, image, light * 1.1, int(rng.integers(1, 4)), rng.uniform(0.5, 1.2))
        return image
    # fur: fine streaks along a flow, with darker tabby bands
    streaks = rng.normal(0, 1, (size, size)).astype(np.float32)
    pil = Image.fromarray(photo.to_uint8((streaks[..., None] * 0.25 + 0.5).repeat(3, -1)))
    pil = pil.filter(ImageFilter.GaussianBlur(0.8)).rotate(float(np.degrees(angle)), resample=Image.Resampling.BILINEAR)
    grey = np.asarray(pil.resize((size, size * 3)).crop((0, size, size, size * 2)), dtype=np.float32)[..., 0] / 255
    bands = 0.5 + 0.5 * np.sin(u * rng.uniform(4, 12) + 2 * photo.smooth_field(rng, size, size, 3))
    grey = np.clip(0.6 * grey + 0.4 * bands ** rng.uniform(1, 3), 0, 1)
    dark = sample_colour(rng, str(rng.choice(("black", "brown")))) * 0.8
    light = sample_colour(rng, str(rng.choice(("neutral", "brown", "white", "grey", "orange"))))
    return dark + grey[..., None] * (light - dark)


def lattice(rng: np.random.Generator, size: int) -> np.ndarray:
    """Thin hard-edged frames: a steel tower's X-braces, a window's lattice, a fence, on a plain ground."""
    from PIL import Image, ImageDraw

    ground = sample_colour(rng, str(rng.choice(patterns.NAMES)))
    sky = ground * photo.lighting(rng, size, size, rng.uniform(0, 0.3))
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    cell_w = rng.uniform(14, 50) * size / 96
    cell_h = cell_w * rng.uniform(0.6, 1.4)
    width = max(1, int(rng.uniform(1, 3.5) * size / 96))
    if rng.random() < 0.6:  # a tower or a frame: one or two columns of panels, ground either side
        columns = int(rng.integers(1, 3))
        x0 = rng.uniform(-0.1, 0.6) * size - columns * cell_w / 2 + size * 0.2
    else:  # a lattice or fence across the window
        columns = int(size / cell_w) + 2
        x0 = -rng.uniform(0, cell_w)
    braces = rng.random() < 0.8
    for c in range(columns):
        left, right = x0 + c * cell_w, x0 + (c + 1) * cell_w
        for y in np.arange(-rng.uniform(0, cell_h), size + cell_h, cell_h):
            draw.line([(left, y), (right, y)], fill=255, width=width)
            if braces:
                draw.line([(left, y), (right, y + cell_h)], fill=255, width=width)
                draw.line([(right, y), (left, y + cell_h)], fill=255, width=width)
        draw.line([(left, 0), (left, size)], fill=255, width=width * 2)
        draw.line([(right, 0), (right, size)], fill=255, width=width * 2)
    coverage = (np.asarray(canvas.rotate(rng.uniform(-20, 20) + (90 if rng.random() < 0.3 else 0)),
                           dtype=np.float32) / 255)[..., None]
    metal = sample_colour(rng, str(rng.choice(("black", "grey", "white", "brown", "red"))))
    return sky * (1 - coverage) + metal * coverage


def ribbons(rng: np.random.Generator, size: int) -> np.ndarray:
    """Short bars of stripes (medal ribbons, a label's band, a flag's corner) on a plain ground."""
    ground = sample_colour(rng, str(rng.choice(patterns.NAMES)))
    image = np.broadcast_to(ground, (size, size, 3)).astype(np.float32)
    bar = int(rng.uniform(0.12, 0.3) * size)
    top = int(rng.uniform(0.05, 0.45) * size)
    for row in range(int(rng.integers(1, 4))):
        y0 = top + row * bar
        x0, x1 = int(rng.uniform(0, 0.3) * size), int(rng.uniform(0.7, 1.0) * size)
        stripes = patterns.stripes(rng, size)
        image[y0:y0 + int(bar * 0.9), x0:x1] = stripes[y0:y0 + int(bar * 0.9), x0:x1]
    return image


def scattered_dots(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dots of mixed sizes and colours scattered at random on a ground (a star field, confetti)."""
    from PIL import Image, ImageDraw, ImageFilter

    ground = sample_colour(rng, str(rng.choice(("black", "black", "blue", "white", "neutral", "red", "green"))))
    canvas = Image.new("RGB", (size, size), prints.rgb255(ground))
    draw = ImageDraw.Draw(canvas)
    names = [n for n in patterns.NAMES if n not in ("silver", "gold", "rose gold", "copper")]
    for _ in range(int(rng.integers(15, 90) * (size / 96) ** 2)):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(0.6, 4) ** rng.uniform(1, 1.6) * size / 96
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=prints.rgb255(sample_colour(rng, str(rng.choice(names)))))
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1))), dtype=np.float32) / 255


def _one_of(*choices):
    """A generator that picks one of (weight, generator) per patch."""
    weights = np.array([w for w, _ in choices], dtype=np.float64)
    weights /= weights.sum()

    def generate(rng: np.random.Generator, size: int) -> np.ndarray:
        return choices[int(rng.choice(len(choices), p=weights))][1](rng, size)

    return generate


GENERATORS = {
    "solid": solid,
    "stripes": _one_of((0.8, patterns.stripes), (0.2, ribbons)),
    "checks": patterns.checks,
    "polka dots": _one_of((0.8, patterns.polka_dots), (0.2, scattered_dots)),
    # prints.big_flower (photographed blooms) is not used: trained on, it made smooth folded fabric
    # (an orange spacesuit) "floral" and still did not make a real dahlia floral (dev points).
    "floral": prints.floral,
    "geometric": _one_of((0.8, patterns.geometric), (0.2, lattice)),
    "text": _one_of((0.7, prints.text), (0.3, prints.handwriting)),
    "natural texture": natural,
}
assert tuple(GENERATORS) == PATTERN_LABELS


def patch(rng: np.random.Generator, label: str, size: int, resize: str = "bilinear") -> np.ndarray:
    """One uint8 size×size×3 patch of pattern `label`, as Pinpoint's crop would hand it over."""
    window = int(rng.integers(size, size * 5 // 3 + 1))
    image = GENERATORS[label](rng, window).astype(np.float32)
    if rng.random() < 0.12:  # digital product images, scans and screenshots are clean
        return photo.resize_like_crop(photo.to_uint8(image), size, resize)
    if label != "solid" and rng.random() < 0.2:  # a print on a garment beside the background
        image = _beside(rng, image, window)
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
    """per_label patches of every pattern, uint8 [N, size, size, 3] and int labels [N], shuffled
    (training and held-out sets differ only by seed)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(PATTERN_LABELS)), per_label)
    rng.shuffle(labels)
    images = generate.render(__name__, PATTERN_LABELS, labels, seed, size, resize)
    return images, labels.astype(np.int32)
