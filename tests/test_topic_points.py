"""The real-photo topic check's fixture (tests/data/topic_points.json): well-formed, loadable offline, split fixed.

The points were labelled by looking at the window the topic model sees, never at a model's answer;
the file's "about" says how they were labelled and split. These tests only check the fixture: they run
no model.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from service.classify.imaging import CropSpec, crop_box
from service.tools.train import realcheck
from service.tools.train.topics import TOPIC_LABELS

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "topic_points.json"
PHOTOS = DATA / "photos"

TOPICS = TOPIC_LABELS  # the model's own list: every label here must be one it answers
# The topic model's crop: a square of 0.6 x the shorter side (at least 160 px), resized to 224 x 224.
SPEC = CropSpec(width=224, height=224, fraction=0.6, min_px=160, keep_aspect=True, resize="bilinear")
HEAVY_OVERLAP = 0.3  # windows with a larger IoU on one scene were kept in one set

# The split was fixed before any topic model was tuned: changing it means changing these on purpose.
SET_COUNTS = {"dev": 64, "holdout": 55}
HOLDOUT_SHA256 = "19fd2fd3b151d9c5c810395317c7fa384b7170ee3f99924ee1e8616cb03e8743"


def _points() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["points"]


def _holdout_digest(points: list[dict]) -> str:
    rows = sorted(f'{p["image"]}|{p["x"]}|{p["y"]}|{p["label"]}' for p in points if p["set"] == "holdout")
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _scene(image: str) -> str:
    return image.split("[", 1)[0]  # stereo_motorcycle and stereo_motorcycle[1] are one scene


def _iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def test_every_point_is_a_topic_point_with_known_labels():
    points = _points()
    assert {p["model"] for p in points} == {"theme"}
    for point in points:
        assert point["label"] in TOPICS, point
        assert all(a in TOPICS for a in point["accept"]), point
        assert point["label"] not in point["accept"] and len(set(point["accept"])) == len(point["accept"]), point
        assert len(point["accept"]) <= 2, point  # accept lists stay short
        assert point["set"] in ("dev", "holdout") and point.get("note"), point
    keys = [(p["image"], p["x"], p["y"]) for p in points]
    assert len(keys) == len(set(keys))
    assert len({p["label"] for p in points}) >= 12
    assert realcheck.load_points(FIXTURE, "theme") == points


def test_enough_points_and_the_split_is_the_fixed_one():
    points = _points()
    counts = Counter(p["set"] for p in points)
    assert len(points) >= 80 and counts["holdout"] >= 40
    assert dict(counts) == SET_COUNTS
    assert _holdout_digest(points) == HOLDOUT_SHA256


def test_every_photo_loads_offline_and_every_point_is_inside_it():
    points = _points()
    boxes = []
    for point in points:
        image = realcheck.load_image(point["image"])  # package data or tests/data/photos: no network
        assert image.mode == "RGB"
        assert 0 <= point["x"] < image.width and 0 <= point["y"] < image.height, point
        boxes.append(crop_box(SPEC, image.width, image.height, point["x"], point["y"]))
    # points whose windows overlap heavily were kept in one set, so no held-out window is half a dev window
    for i, a in enumerate(points):
        for j in range(i):
            b = points[j]
            if a["set"] != b["set"] and _scene(a["image"]) == _scene(b["image"]):
                assert _iou(boxes[i], boxes[j]) <= HEAVY_OVERLAP, (a, b)


def test_committed_photos_are_small_used_and_noticed():
    notice = (PHOTOS / "NOTICE.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in PHOTOS.glob("*.jpg"))
    used = {p["image"].partition(":")[2] for p in _points() if p["image"].startswith("photos:")}
    assert used == set(files)
    for name in files:
        path = PHOTOS / name
        assert path.stat().st_size <= 200_000, name
        assert f"| {name} |" in notice, name
        with realcheck.load_image(f"photos:{name}").copy() as image:
            assert max(image.size) <= 1024, name


def test_an_unknown_source_is_still_refused():
    with pytest.raises(ValueError):
        realcheck.load_image("nowhere:photo.jpg")
