"""The real-photo check: points on photographs that ship inside scikit-image, labelled by a person.

The fixture (tests/data/real_points.json) lists {model, image, x, y, label, note}; `image` names a
skimage.data function. None of these photographs is used to train the colour model (the texture
photos in texture.MATERIAL_IMAGES are, so none of those is in the check).
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from service.train import pipeline

DEFAULT_POINTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "real_points.json"


@contextlib.contextmanager
def _only(models_dir: Path, model: str) -> Iterator[Path]:
    """A repository holding only `model` (a link to it, and to the policies), so only it is loaded."""
    with tempfile.TemporaryDirectory(prefix="pinpoint-evaluate-") as tmp:
        for name in (model, "models.toml"):
            if (Path(models_dir) / name).exists():
                (Path(tmp) / name).symlink_to(Path(models_dir, name).resolve())
        yield Path(tmp)


@functools.lru_cache(maxsize=None)
def load_image(name: str) -> Image.Image:
    """A scikit-image sample as an RGB PIL image, with alpha flattened on white as Pinpoint does.

    `name` is a skimage.data function; `name[i]` picks item i of one that returns a tuple
    (stereo_motorcycle[1] is the right-hand view of the stereo pair)."""
    import skimage.data

    function, _, index = name.partition("[")
    pixels = getattr(skimage.data, function)()
    if isinstance(pixels, tuple):
        pixels = pixels[int(index.rstrip("]") or 0)]
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(pixels)
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return image.convert("RGB")


def load_points(path: Path | None, model: str) -> list[dict]:
    path = Path(path or DEFAULT_POINTS)
    return [p for p in json.loads(path.read_text(encoding="utf-8"))["points"] if p["model"] == model]


def score(models_dir: Path, labels_dir: Path, model: str, points: list[dict]) -> tuple[np.ndarray, list[str], str]:
    """Scores [len(points), labels], the label list, and which pipeline produced them: Pinpoint's
    own (decode, crop, resize, batching), so the check measures what a user clicking gets."""
    from service.engine import Engine

    by_image: dict[str, list[int]] = {}
    for row, point in enumerate(points):
        by_image.setdefault(point["image"], []).append(row)
    labels = list(pipeline.spec(models_dir, labels_dir, model).labels)
    scores = np.zeros((len(points), len(labels)), dtype=np.float32)
    with _only(models_dir, model) as repository, Engine.open(models_dir=str(repository),
                                                             labels_dir=str(labels_dir)) as engine:
        for name, rows in by_image.items():
            data = pipeline.png_bytes(load_image(name))
            result = engine.classify_image(data, [(points[r]["x"], points[r]["y"]) for r in rows],
                                           units="px", models=[model], top_k=len(labels))
            for r, prediction in zip(rows, result.predictions):
                for label in prediction.results[model]:
                    scores[r, labels.index(label.label)] = label.score
    return scores, labels, "service.engine.Engine"

