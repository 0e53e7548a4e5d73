"""The real-photo check: points on photographs that ship inside PyPI packages, labelled by a person.

The fixture (tests/data/real_points.json) lists {model, set, image, x, y, label, accept, note}:
`label` is a person's answer at the point and `accept` the other answers a person would accept
there (a pale peach petal: orange, or pink). `image` names where the photograph comes from:
- a scikit-image sample by its skimage.data function (`astronaut`; `stereo_motorcycle[1]` picks
  item 1 of a function that returns a tuple),
- `sklearn:china.jpg` / `sklearn:flower.jpg`: scikit-learn's load_sample_images(),
- `matplotlib:grace_hopper.jpg`: a file of matplotlib's sample data (mpl-data/sample_data),
- `photos:quokka.jpg`: a photograph committed in tests/data/photos (taken from a permissively
  licensed PyPI wheel; tests/data/photos/NOTICE.md names the wheel, file and licence of each).
The package files are read where the installed wheel keeps them; nothing is downloaded.
`set` is `dev` (looked at while the generators were tuned) or `holdout` (labelled before the
models were changed and kept out of every tuning decision). None of these photographs is used to
train either model (the texture photos in texture.MATERIAL_IMAGES are, so none of those is here).
The topic check (tests/data/topic_points.json, `load_points(path, "theme")`) names its photographs
the same way; its "about" says which of them are also photographs of service/tools/train/regions.json.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from service.tools.train import run_frozen

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
DEFAULT_POINTS = DATA / "real_points.json"   # colour and pattern points
TOPIC_POINTS = DATA / "topic_points.json"    # theme (topic) points, labelled apart: another question
PHOTOS_DIR = DATA / "photos"                 # the `photos:` prefix


def points_file(model: str) -> Path:
    return TOPIC_POINTS if model == "theme" else DEFAULT_POINTS


@contextlib.contextmanager
def _only(models_dir: Path, model: str) -> Iterator[Path]:
    """A repository holding only `model` (a link to it, and to the policies), so only it is loaded."""
    with tempfile.TemporaryDirectory(prefix="pinpoint-evaluate-") as tmp:
        for name in (model, "models.toml"):
            if (Path(models_dir) / name).exists():
                (Path(tmp) / name).symlink_to(Path(models_dir, name).resolve())
        yield Path(tmp)


PACKAGE_FILES = {  # prefix -> (package, folder inside it)
    "sklearn": ("sklearn", "datasets/images"),
    "matplotlib": ("matplotlib", "mpl-data/sample_data"),
}


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    import importlib.util

    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed (pip install the train or test extras)")
    return Path(list(found.submodule_search_locations)[0]) / relative


def _pixels(name: str) -> np.ndarray | Image.Image:
    prefix, _, rest = name.partition(":")
    if rest and prefix == "photos":
        with Image.open(PHOTOS_DIR / rest) as image:
            image.load()
            return image.copy()
    if rest:
        if prefix not in PACKAGE_FILES:
            raise ValueError(f"unknown image source {prefix!r} in {name!r}")
        package, folder = PACKAGE_FILES[prefix]
        with Image.open(package_file(package, f"{folder}/{rest}")) as image:
            image.load()
            return image.copy()
    import skimage.data

    function, _, index = name.partition("[")
    pixels = getattr(skimage.data, function)()
    if isinstance(pixels, tuple):
        pixels = pixels[int(index.rstrip("]") or 0)]
    return np.asarray(pixels)


@functools.cache
def load_image(name: str) -> Image.Image:
    """A photograph of the check as an RGB PIL image, with alpha flattened on white as Pinpoint does."""
    pixels = _pixels(name)
    if isinstance(pixels, Image.Image):
        image = pixels
    else:
        if pixels.dtype != np.uint8:
            pixels = (np.clip(pixels.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8)
        image = Image.fromarray(pixels)
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return image.convert("RGB")


def load_points(path: Path | None, model: str) -> list[dict]:
    path = Path(path or points_file(model))
    return [p for p in json.loads(path.read_text(encoding="utf-8"))["points"] if p["model"] == model]


def score(models_dir: Path, labels_dir: Path, model: str, points: list[dict],
          engine=None) -> tuple[np.ndarray, list[str], str]:
    """Scores [len(points), labels], the label list, and which pipeline produced them: Pinpoint's
    own (decode, crop, resize, batching), so the check measures what a user clicking gets. With
    `engine` (an open service.engine.Engine serving `model`) no engine of its own is opened."""
    from service.engine import Engine

    by_image: dict[str, list[int]] = {}
    for row, point in enumerate(points):
        by_image.setdefault(point["image"], []).append(row)
    labels = list(run_frozen.spec(models_dir, labels_dir, model).labels)
    scores = np.zeros((len(points), len(labels)), dtype=np.float32)
    with contextlib.ExitStack() as stack:
        if engine is None:
            repository = stack.enter_context(_only(models_dir, model))
            engine = stack.enter_context(Engine.open(models_dir=str(repository), labels_dir=str(labels_dir)))
        for name, rows in by_image.items():
            data = run_frozen.png_bytes(load_image(name))
            result = engine.classify_image(data, [(points[r]["x"], points[r]["y"]) for r in rows],
                                           units="px", models=[model], top_k=len(labels))
            for r, prediction in zip(rows, result.predictions):
                for label in prediction.results[model]:
                    scores[r, labels.index(label.label)] = label.score
    return scores, labels, "service.engine.Engine"
