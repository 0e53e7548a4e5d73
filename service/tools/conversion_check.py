"""Convert's check: the published graph against the source model, on windows of real photographs cut
around seeded points the way the server cuts them and normalised as the written model.toml says; and
a warning when the model's answers barely move between those windows while they do on raw pixels (an
input scaled twice answers nearly the same scores everywhere).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from service.serving.freezing import INPUT_NAME, OUTPUT_NAME, ConvertError

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")
NEAR_CONSTANT = 0.02    # answers that move less than this between photos (mean L1 from their mean) barely move


def _photos(images: str | Path | None):
    """(name, RGB PIL image) pairs: the files in `images`, else scikit-image's sample photographs."""
    from PIL import Image

    if images is not None:
        folder = Path(images)
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        found = []
        for file in files:
            try:
                with Image.open(file) as image:
                    found.append((file.name, image.convert("RGB")))
            except (OSError, ValueError):
                continue  # not an image
        if not found:
            raise ConvertError(f"--images {folder}: no image files in it")
        return found, f"photos in {folder}"
    try:
        from skimage import data
    except ImportError:
        return [], ""
    found = []
    for name in SAMPLE_PHOTOS:
        try:
            pixels = getattr(data, name)()
        except Exception:  # a sample that needs a download (pooch) is skipped
            continue
        found.append((name, Image.fromarray(pixels).convert("RGB")))
    return found, "scikit-image's sample photos"


def sample_crops(height: int, width: int, channels: int, samples: int, seed: int, fraction: float, min_px: int,
                 images: str | Path | None = None) -> tuple[np.ndarray, str]:
    """uint8 [samples, height, width, channels]: windows around seeded points of real photographs, cut
    and resized by the server's own code (service/classify/imaging.py), and what they were cut from. Random
    pixels only when no photograph is at hand (scikit-image not installed and no --images)."""
    from service.classify.imaging import CropSpec, DecodedImage, crop

    rng = np.random.default_rng(seed)
    photos, origin = _photos(images)
    if not photos:
        return rng.integers(0, 256, size=(samples, height, width, channels), dtype=np.uint8), "random pixels"
    spec = CropSpec(width=width, height=height, channels=channels, fraction=fraction, min_px=min_px)
    crops = []
    for i in range(samples):
        _, rgb = photos[i % len(photos)]
        image = DecodedImage(rgb=rgb, format="PNG", width=rgb.width, height=rgb.height)
        crops.append(crop(image, spec, rng.uniform(0, rgb.width), rng.uniform(0, rgb.height)))
    return np.stack(crops), f"windows of {origin} ({len(photos)})"


def spread(answers: np.ndarray) -> float:
    """How far answers move between inputs: the mean L1 distance of each from their mean."""
    answers = answers.reshape(len(answers), -1)
    return float(np.mean(np.abs(answers - answers.mean(axis=0)).sum(axis=1)))



def run_graph(graph_def, inputs: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return np.asarray(session.run(f"{OUTPUT_NAME}:0", {f"{INPUT_NAME}:0": inputs}), dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class Comparison:
    expected: np.ndarray        # the source model's answers, [samples, classes]
    frozen32: np.ndarray        # the float32 frozen graph's
    answers: np.ndarray         # the published graph's (the float32 one's, unless halved)
    spread: float               # how far the source's answers move between the samples
    origin: str                 # what the samples were cut from
    warnings: list[str]


def compare(source, float32_graph, halved_graph, spec, *, samples: int, seed: int, fraction: float, min_px: int,
            images: str | Path | None) -> Comparison:
    """The source model, the float32 frozen graph and (when there is one) the float16 graph on the same
    `samples` windows, prepared by the server's own code for the input `spec` (a repository.InputSpec)."""
    import tensorflow as tf

    from service.classify.preprocess import prepare

    warnings = []
    crops, origin = sample_crops(spec.height, spec.width, spec.channels, samples, seed, fraction, min_px, images)
    inputs = prepare(spec, crops)
    expected = np.asarray(source.call(tf.constant(inputs)), dtype=np.float32).reshape(samples, -1)
    moves = spread(expected)
    if source.input_dtype == "float32" and spec.scale != 1.0 and moves < NEAR_CONSTANT and samples > 1:
        raw = dataclasses.replace(spec, dtype="float32", scale=1.0, offset=0.0)
        raw_moves = spread(np.asarray(source.call(tf.constant(prepare(raw, crops))), dtype=np.float32))
        if raw_moves > 5 * max(moves, 1e-9):
            warnings.append(
                f"on {samples} {origin}, the model's answers barely change with scale {spec.scale:.6g} (spread "
                f"{moves:.3g}) but do on raw 0..255 pixels (spread {raw_moves:.3g}): it probably scales its "
                f"input itself, so this version would answer nearly the same scores everywhere; "
                "convert it again with --scale 1 if it does")
    frozen32 = run_graph(float32_graph, inputs).reshape(samples, -1)
    answers = run_graph(halved_graph, inputs).reshape(samples, -1) if halved_graph is not None else frozen32
    return Comparison(expected=expected, frozen32=frozen32, answers=answers, spread=moves, origin=origin,
                      warnings=warnings)
