"""Generated training patches for the colour model: the window around a point of a photograph.

A patch is drawn at a random "window" size (as a crop of a small or large photo would be), given
light, shadow, texture, a colour cast, blur, noise and JPEG, then resized to the model input with
the same Pillow filter Pinpoint uses. Often a different surface intrudes from an edge (the point
is on an object, not in the middle of a swatch), so the label is always the colour at the centre.
"""

from __future__ import annotations

import numpy as np

from service.tools.train import generate, metal, photo, prints, texture
from service.tools.train.palette import COLOR_LABELS, MULTI_HUES, SURFACES, sample_colour

METALS = ("silver", "gold", "rose gold", "copper")
ACHROMATIC = ("black", "white", "grey", "neutral")
# Share of each label in the *training* set. Metal is rare at a clicked point and looks like glossy
# paint under some light, so the model sees it less often and needs more evidence to answer it.
TRAINING_SHARE = {"gold": 0.5, "rose gold": 0.4, "copper": 0.4, "silver": 0.8}


def surface(rng: np.random.Generator, label: str, h: int, w: int) -> np.ndarray:
    """A lit, textured surface that a person would call `label` (any label except the two patterns)."""
    body = sample_colour(rng, label)
    if label in METALS:
        return metal.render(rng, body, h, w)
    # Light and texture change lightness; achromatic names depend on lightness, so they get less.
    gentle = label in ACHROMATIC
    amplitude = 0.0
    if rng.random() < 0.8:
        amplitude = rng.uniform(0, 0.06) if gentle else rng.uniform(0, 0.35) ** 1.5 * 1.2
    image = body * (1 + amplitude * texture.random_texture(rng, h, w))[..., None]
    if rng.random() < 0.35:
        # Real surfaces are not one colour: foliage runs from yellow-green to dark green, wood and fur
        # from tan to dark brown, a sky from pale to deep blue. Two shades of the same name, mottled.
        second = sample_colour(rng, label) * (1 + amplitude * texture.random_texture(rng, h, w))[..., None]
        mix = texture.mottle(rng, h, w)[..., None]
        image = image * (1 - mix) + second * mix
    image = image * photo.lighting(rng, h, w, rng.uniform(0, 0.08 if gentle else 0.22))
    if not gentle and rng.random() < 0.35:
        # Folds of fabric and curves of painted objects: strong shading that is *not* metal, so the
        # model does not call every shaded orange sleeve copper.
        image = image * photo.folds(rng, h, w, rng.uniform(0.15, 0.45))
    if rng.random() < 0.3 and label != "white":
        image = image + rng.uniform(0.5, 1.0) * photo.gloss(rng, h, w) * (1 - image)  # glossy paint or plastic
    if label == "black" and rng.random() < 0.25:
        image = specks(rng, image)  # dust, glitter, a night sky: still black
    return image.astype(np.float32)


def specks(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    for _ in range(int(rng.integers(1, 6))):
        y, x = int(rng.integers(h)), int(rng.integers(w))
        radius = int(rng.integers(0, 2))
        image[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1] = rng.uniform(0.3, 1.0, 3)
    return image


def marks(rng: np.random.Generator, image: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """A few printed letters on the surface (a label, a logo): the surface keeps its name."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    canvas = Image.new("L", (w, h), 0)
    size = max(6, int(h * rng.uniform(0.2, 0.45)))
    ImageDraw.Draw(canvas).text((rng.uniform(-w / 2, w / 3), rng.uniform(-size / 2, h - size)),
                                prints._word(rng), fill=255, font=prints.font(size))
    coverage = (np.asarray(canvas, dtype=np.float32) / 255)[..., None]
    return image * (1 - coverage) + ink * coverage


def region_map(rng: np.random.Generator, h: int, w: int, regions: int) -> np.ndarray:
    """Integer map of `regions` areas: stripes, cells or blobs, all small enough to meet at the centre."""
    yy, xx = photo.coordinates(h, w)
    layout = rng.random()
    if layout < 0.35:  # stripes of a print or a flag
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * xx + np.sin(angle) * yy + 0.1 * photo.smooth_field(rng, h, w, 3)
        period = rng.uniform(0.25, 0.7)
        return (np.floor(u / period).astype(int) % regions)
    if layout < 0.75:  # a patchwork of cells, one near the centre
        seeds = rng.uniform(-0.9, 0.9, (regions + int(rng.integers(0, 4)), 2)).astype(np.float32)
        seeds[0] = rng.uniform(-0.2, 0.2, 2)
        distance = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
        return np.argmin(distance, axis=-1) % regions
    # blobs of several colours on a ground
    index = np.zeros((h, w), dtype=int)
    for k in range(1, regions):
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(-0.7, 0.7, 2)
            radius = rng.uniform(0.2, 0.5)
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 + 0.05 * photo.smooth_field(rng, h, w, 3) < radius ** 2
            index[blob] = k
    return index


def centre_is_mixed(index: np.ndarray, regions: int) -> bool:
    h, w = index.shape
    centre = index[h // 4: h - h // 4, w // 4: w - w // 4]
    shares = np.bincount(centre.ravel(), minlength=regions) / centre.size
    return int((shares >= 0.15).sum()) >= 2


def multi_colour(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Two to four clearly different hues sharing the centre of the window."""
    regions = int(rng.integers(2, 5))
    names = list(rng.choice(MULTI_HUES, size=regions, replace=False))
    if rng.random() < 0.3:
        names[-1] = str(rng.choice(("white", "black")))  # prints often mix colours with white or black
    for _ in range(20):
        index = region_map(rng, h, w, regions)
        if centre_is_mixed(index, regions):
            break
    colours = np.stack([sample_colour(rng, name) for name in names])
    image = colours[index]
    image = image * (1 + rng.uniform(0, 0.1) * texture.random_texture(rng, h, w))[..., None]
    return (image * photo.lighting(rng, h, w, rng.uniform(0, 0.15))).astype(np.float32)


def black_and_white(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Greyscale photo content or a black-and-white print: both dark and light tones, no colour,
    both present around the point (a black surface beside a white one is black, or white)."""
    for _ in range(10):
        image = _greyscale(rng, h, w)
        centre = image[h // 4: h - h // 4, w // 4: w - w // 4, 0]
        if (centre < 0.35).mean() >= 0.12 and (centre > 0.6).mean() >= 0.12:
            break
    return image


def _greyscale(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    choice = rng.random()
    if choice < 0.45:
        grey = texture.material_crop(rng, h, w)
    elif choice < 0.7:  # print and handwriting: dark letters on paper
        grey = prints.text(rng, max(h, w))[:h, :w].mean(axis=-1)
    else:
        index = region_map(rng, h, w, 2)
        grey = index.astype(np.float32)
        if rng.random() < 0.5:
            grey = 1 - grey
    low, high = np.percentile(grey, [rng.uniform(2, 20), rng.uniform(80, 98)])
    grey = np.clip((grey - low) / max(high - low, 1e-3), 0, 1)
    dark, light = rng.uniform(0.0, 0.15), rng.uniform(0.8, 1.0)
    grey = dark + (light - dark) * grey ** rng.uniform(0.7, 1.4)
    image = np.repeat(grey[..., None], 3, axis=-1)
    return (image * (1 + rng.uniform(-0.03, 0.03, 3))).astype(np.float32)


def render(rng: np.random.Generator, label: str, h: int, w: int) -> np.ndarray:
    if label == "multi-colour":
        return multi_colour(rng, h, w)
    if label == "black and white":
        return black_and_white(rng, h, w)
    return surface(rng, label, h, w)


def intrude(rng: np.random.Generator, image: np.ndarray, label: str) -> np.ndarray:
    """Put the labelled surface in a scene: another surface covers an edge, surrounds it (a small
    object clicked on: a lens on a tank), or crosses it as a thin line (a seam, a stripe on a logo).
    The point itself always stays on the labelled surface."""
    h, w = image.shape[:2]
    yy, xx = photo.coordinates(h, w)
    layout = rng.random()
    if layout < 0.55:  # an edge or corner, sometimes close to the point (a rim, a stripe's border)
        angle = rng.uniform(0, 2 * np.pi)
        distance = np.cos(angle) * xx + np.sin(angle) * yy
        edge, softness = rng.uniform(0.12, 0.85), rng.uniform(0.01, 0.08)
    elif layout < 0.8:  # the labelled surface is an object in the middle of the window
        stretch = rng.uniform(0.7, 1.4)
        radius = np.sqrt((yy * stretch) ** 2 + (xx / stretch) ** 2) + 0.1 * photo.smooth_field(rng, h, w, 3)
        distance, edge, softness = radius, rng.uniform(0.45, 0.8), rng.uniform(0.01, 0.05)
    else:  # a thin line that misses the centre by a little
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(0.12, 0.6) * rng.choice([-1, 1])
        across = np.abs(np.cos(angle) * xx + np.sin(angle) * yy - offset)
        distance, edge, softness = -across, -rng.uniform(0.03, 0.1), 0.01
    mask = (1 / (1 + np.exp(-(distance - edge) / softness)))[..., None].astype(np.float32)
    return image * (1 - mask) + surface(rng, neighbour(rng, label), h, w) * mask


def neighbour(rng: np.random.Generator, label: str) -> str:
    """What lies next to a surface in a photo: often white or black (a rim, a tyre, a backdrop),
    or any other surface. The label stays the colour at the point however much of the window it fills."""
    choice = rng.random()
    if choice < 0.3 and label not in ("white", "black"):
        return str(rng.choice(("white", "black")))
    if choice < 0.45 and label in ("white", "black"):
        return "black" if label == "white" else "white"
    return str(rng.choice([name for name in SURFACES if name != label]))


def patch(rng: np.random.Generator, label: str, size: int, resize: str = "bilinear") -> np.ndarray:
    """One uint8 size×size×3 training patch of `label`, as Pinpoint's crop would hand it over."""
    window = int(rng.integers(size - size // 4, size * 2 + 1))
    image = render(rng, label, window, window)
    if label not in ("multi-colour", "black and white") and rng.random() < 0.6:
        image = intrude(rng, image, label)
        if rng.random() < 0.25:  # a point between two other things (a band of a flag, a strap)
            image = intrude(rng, image, label)
    if label not in ("multi-colour", "black and white") and rng.random() < 0.12:
        image = marks(rng, image, sample_colour(rng, str(rng.choice(("black", "white", "red", "blue")))))
    if rng.random() < 0.3 and label not in ("white", "black and white"):
        image = image * photo.shadow(rng, window, window, rng.uniform(0.2, 0.6))
    if label != "black and white":
        image = photo.colour_cast(rng, image, 0.07)
    pixels = photo.camera(rng, image, blur=1.3, noise=0.03, jpeg=0.6)
    return photo.resize_like_crop(pixels, size, resize)


def dataset(seed: int, per_label: int, size: int, resize: str = "bilinear",
            training: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """per_label patches of every label (times TRAINING_SHARE when training), uint8
    [N, size, size, 3] and int labels [N], shuffled."""
    rng = np.random.default_rng(seed)
    counts = [int(round(per_label * (TRAINING_SHARE.get(name, 1.0) if training else 1.0))) for name in COLOR_LABELS]
    labels = np.repeat(np.arange(len(COLOR_LABELS)), counts)
    rng.shuffle(labels)
    images = generate.render(__name__, COLOR_LABELS, labels, seed, size, resize)
    return images, labels.astype(np.int32)
