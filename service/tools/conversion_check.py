"""The inputs of convert's check: windows of real photographs, cut around seeded points the way the
server cuts them, to run the published graph and the source model on; and how far a model's answers
move between those windows (an input scaled twice answers nearly the same scores everywhere).
"""

from __future__ import annotations

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
