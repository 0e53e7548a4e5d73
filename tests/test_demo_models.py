"""The committed demo models (models/color, models/theme, models/pattern): they load the way Pinpoint serves them,
have the documented shapes, and name fixed inputs and real photographs correctly.

Real-photo points go through Pinpoint's own in-process pipeline (service.engine.Engine), so these
tests check what a user clicking on the photo gets. The training smoke test runs the real training
code for a couple of steps on a tiny generated set.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageDraw

from fixtures import demo_engine
from service.tools.train import demos, realcheck, run_frozen

REPO = Path(__file__).resolve().parents[1]
MODELS, LABELS = REPO / "models", REPO / "labels"
SHAPES = {"color": (32, 18), "pattern": (96, 8)}


@pytest.fixture(scope="module")
def color():
    with run_frozen.FrozenModel(MODELS, LABELS, "color") as model:
        yield model


@pytest.fixture(scope="module")
def pattern():
    with run_frozen.FrozenModel(MODELS, LABELS, "pattern") as model:
        yield model


@pytest.fixture(scope="module")
def engine():
    with demo_engine() as running:
        yield running


def top1(model, crops: np.ndarray) -> list[str]:
    return [model.labels[k] for k in model.probabilities(crops).argmax(axis=1)]


@pytest.mark.parametrize("name", ["color", "pattern"])
def test_committed_graph_imports_into_a_fresh_graph_with_the_documented_shapes(name):
    size, classes = SHAPES[name]
    version = run_frozen.spec(MODELS, LABELS, name).directory
    config = tomllib.loads((version / "model.toml").read_text())
    graph_path = version / config["graph"]
    assert graph_path.stat().st_size < 10_000_000
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    images = graph.get_tensor_by_name(config["input"]["tensor"])
    scores = graph.get_tensor_by_name(config["output"]["tensor"])
    assert images.dtype == tf.float32 and images.shape.as_list() == [None, size, size, 3]
    assert scores.shape.as_list() == [None, classes]
    assert (config["input"]["height"], config["input"]["width"], config["input"]["channels"]) == (size, size, 3)
    with tf.compat.v1.Session(graph=graph) as session:
        out = session.run(scores, {images: np.zeros((3, size, size, 3), np.float32)})
    assert out.shape == (3, classes)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-4)  # probabilities, so softmax = false
    assert config["output"]["softmax"] is False


@pytest.mark.parametrize("name", ["color", "pattern"])
def test_labels_and_crop_are_the_ones_the_model_was_trained_for(name):
    demo = demos.get(name)
    assert run_frozen.spec(MODELS, LABELS, name).labels == demo.labels
    config = tomllib.loads((run_frozen.spec(MODELS, LABELS, name).directory / "model.toml").read_text())
    assert config["crop"] == {"fraction": demo.fraction, "min_px": demo.min_px, "keep_aspect": True,
                              "resize": demo.resize}
    assert (config["input"]["scale"], config["input"]["offset"]) == pytest.approx((demo.scale, demo.offset))


SWATCHES = {
    "red": (200, 25, 30), "orange": (245, 130, 30), "yellow": (250, 215, 40), "green": (50, 150, 60),
    "blue": (35, 70, 190), "purple": (110, 45, 160), "pink": (235, 100, 170), "brown": (110, 62, 28),
    "white": (246, 246, 244), "black": (12, 12, 14), "grey": (128, 128, 130), "neutral": (215, 195, 165),
}


@pytest.mark.parametrize("label", list(SWATCHES))
def test_color_names_a_plain_swatch(color, label):
    swatch = np.full((1, 32, 32, 3), SWATCHES[label], np.uint8)
    assert top1(color, swatch) == [label]


def test_color_names_patterns_of_several_colours_and_of_black_and_white(color):
    checker = (np.indices((32, 32)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    black_and_white = np.repeat(checker[..., None], 3, axis=-1)
    bands = np.array([(220, 30, 30), (40, 90, 210), (250, 210, 30), (40, 160, 70)], np.uint8)
    multi = bands[(np.arange(32) // 8)][None, :, :].repeat(32, axis=0)
    assert top1(color, np.stack([black_and_white, multi])) == ["black and white", "multi-colour"]


def clean_prints() -> dict[str, np.ndarray]:
    """One unmistakable example of most patterns, drawn without any photographic effect."""
    ys, xs = np.indices((96, 96))
    red, white, navy = np.array([200, 30, 40]), np.array([245, 245, 240]), np.array([30, 40, 110])
    stripes = np.where((ys // 8 % 2 == 0)[..., None], red, white)
    checks = np.where(((ys // 12 + xs // 12) % 2 == 0)[..., None], navy, white)
    dots = np.where(((ys % 16 - 8) ** 2 + (xs % 16 - 8) ** 2 < 16)[..., None], white, navy)
    solid = np.clip(np.full((96, 96, 3), (60, 120, 180)) * (0.9 + 0.2 * xs / 96)[..., None], 0, 255)
    page = Image.new("RGB", (96, 96), (250, 250, 245))
    draw = ImageDraw.Draw(page)
    from service.tools.train.prints import font

    lines = ["Pinpoint crops the", "region around a", "point of an image", "and runs frozen", "classifiers on it,",
             "answering the top", "labels with scores."]
    for row, line in enumerate(lines):
        draw.text((2, 2 + row * 19), line, fill=(10, 10, 10), font=font(15))
    return {"stripes": stripes, "checks": checks, "polka dots": dots, "solid": solid, "text": np.asarray(page)}


@pytest.mark.parametrize("label", [
    pytest.param(name, marks=pytest.mark.xfail(
        strict=True, reason="pattern v2 (then theme) calls a clean 12-px navy/white "
                            "checkerboard geometric (v1: checks); its real checkerboards pass"))
    if name == "checks" else name for name in clean_prints()])
def test_pattern_names_a_clean_print(pattern, label):
    assert top1(pattern, clean_prints()[label].astype(np.uint8)[None]) == [label]


@pytest.mark.parametrize("name, floor", [("color", 0.8), ("pattern", 0.85)])
def test_a_fixed_generated_sample_is_mostly_right(name, floor):
    """A small slice of the held-out generated set (the model card quotes the full one)."""
    demo = demos.get(name)
    images, truth = demo.dataset(demos.HELD_OUT_SEED + 1, 6)
    with run_frozen.FrozenModel(MODELS, LABELS, name) as model:
        predicted = model.probabilities(images).argmax(axis=1)
    assert (predicted == truth).mean() >= floor


# Points a person labelled by looking at the photograph; each is unambiguous.
CLEAR_POINTS = [
    ("color", "astronaut", 100, 400, "orange"),          # the spacesuit
    ("color", "astronaut", 215, 215, "black"),           # the turtleneck
    ("color", "rocket", 150, 100, "blue"),               # twilight sky
    ("color", "stereo_motorcycle", 380, 230, "red"),     # fuel tank
    ("color", "stereo_motorcycle", 600, 150, "white"),   # plastic tub
    ("color", "chelsea", 100, 150, "brown"),             # tabby fur
    ("color", "logo", 120, 150, "green"),
    ("color", "page", 200, 100, "black and white"),      # printed text
    ("color", "colorwheel", 270, 130, "yellow"),
    ("theme", "chelsea", 250, 60, "Animals & Pets"),      # the cat
    ("theme", "coffee", 300, 150, "Food & Drink"),        # a cup of coffee
    ("theme", "stereo_motorcycle", 400, 300, "Vehicles & Transport"),
    ("theme", "sklearn:china.jpg", 100, 380, "Architecture"),  # the temple
    ("theme", "astronaut", 430, 140, "Science & Space"),  # the space shuttle's flag and the astronaut
]


@pytest.mark.parametrize("model, image, x, y, label", CLEAR_POINTS)
def test_real_photo_point_through_the_service_pipeline(engine, model, image, x, y, label):
    photo = realcheck.load_image(image)
    result = engine.classify_image(run_frozen.png_bytes(photo), [(x, y)], units="px", models=[model], top_k=5)
    labels = result.predictions[0].results[model]
    assert len(labels) == 5
    assert labels[0].label == label, labels


# Floors on the held-out real-photo points (tests/data/real_points.json for colour and pattern,
# tests/data/topic_points.json for theme; set holdout), an answer a person accepts counting as right,
# a point or two below what the committed models measure (the cards quote the figures). Issue 20's
# targets are not met yet for colour >= 90% top-1 (v2 83.0%) and pattern >= 80% (v2 70.0%); theme v2
# meets its >= 85% top-1 and >= 97% top-3 (measured 89.1% and 100%; top-5 100%; v1: 80.0%, 94.5%).
# Raise these with the models.
HELD_OUT_TARGETS = {"color": (0.81, 0.96), "pattern": (0.65, 0.97), "theme": (0.87, 0.98)}
HELD_OUT_POINTS = {"color": 80, "pattern": 36, "theme": 55}


@pytest.mark.parametrize("name", ["color", "pattern", "theme"])
def test_held_out_real_photo_points_meet_the_targets(engine, name):
    from service.tools.train import evaluate

    points, scores, labels, accepted, _ = evaluate.real_scores(MODELS, LABELS, name, which="holdout", engine=engine)
    assert len(points) >= HELD_OUT_POINTS[name]
    top1, top5 = evaluate.rates(scores, accepted)
    floor1, floor5 = HELD_OUT_TARGETS[name]
    assert top1 >= floor1, f"{name}: held-out top-1 {top1:.1%}"
    if floor5 is not None:
        assert top5 >= floor5, f"{name}: held-out top-5 {top5:.1%}"


def readme_example() -> list[tuple[int, int, str, str]]:
    """(x, y, model, first label) of the README's `pinpoint predict` example answer."""
    import re

    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text[text.index("pinpoint predict photo.jpg --points"):]
    block = block[block.index("```\n", block.index("```\n") + 4):]  # the answer: the next fenced block
    block = block[:block.index("```", 4)]
    rows, point = [], None
    for line in block.splitlines():
        found = re.match(r"\s*(?:\((\d+), (\d+)\))?\s*(color|theme|pattern) v\d+\s+(.+?) \d\.\d\d", line)
        if found:
            if found.group(1):
                point = (int(found.group(1)), int(found.group(2)))
            rows.append((*point, found.group(3), found.group(4)))
    return rows


def test_the_readme_example_answers_what_the_readme_shows(engine):
    """README: save scikit-image's astronaut, `pinpoint predict photo.jpg --points '[[100,400],[448,180]]'`."""
    import io

    rows = readme_example()
    assert {(x, y, model) for x, y, model, _ in rows} == {(x, y, model) for x, y in ((100, 400), (448, 180))
                                                         for model in ("color", "theme", "pattern")}
    jpeg = io.BytesIO()
    realcheck.load_image("astronaut").save(jpeg, format="JPEG")  # photo.jpg as the README saves it
    result = engine.classify_image(jpeg.getvalue(), [(100, 400), (448, 180)], units="px", top_k=5)
    answers = {(round(p.x), round(p.y), model): labels[0].label
               for p in result.predictions for model, labels in p.results.items()}
    for x, y, model, label in rows:
        assert answers[(x, y, model)] == label, (x, y, model, answers[(x, y, model)])


def test_training_smoke_run_writes_a_servable_model(tmp_path):
    from service.tools.train.cli import main

    assert main(["--quick", "--only", "color", "--steps", "2",
                 "--out-models", str(tmp_path / "models"), "--out-labels", str(tmp_path / "labels")]) == 0
    with run_frozen.FrozenModel(tmp_path / "models", tmp_path / "labels", "color") as model:
        scores = model.probabilities(np.zeros((2, 32, 32, 3), np.uint8))
    assert scores.shape == (2, 18)
    assert (tmp_path / "labels" / "color.txt").read_text().splitlines()[0] == "black"
