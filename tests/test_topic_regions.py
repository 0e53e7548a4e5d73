"""The topic model's training regions (service/tools/train/topic_regions.json): well-formed, inside their photos,
and on no photograph of the real-photo checks (tests/data/topic_points.json, tests/data/real_points.json).

No network: every check reads the table as written ('size' records each photo's [width, height]); the one
check that opens the wheels skips unless they are already in the training cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from service.tools.train import wheels
from service.tools.train.topics import TOPIC_LABELS

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "service" / "tools" / "train" / "topic_regions.json"
CHECK = ROOT / "tests" / "data" / "topic_points.json"
COLOUR_CHECK = ROOT / "tests" / "data" / "real_points.json"  # colour and pattern: not trained on either
NOTICE = ROOT / "tests" / "data" / "photos" / "NOTICE.md"

TOPICS = TOPIC_LABELS  # the model's own list: every label here must be one it answers
# Other files holding the check's photographs under another name (crops, copies, other packages).
CHECK_ALIASES = {
    "wall", "faust_github", "citycc0", "kiwi", "tower", "cheetah", "cheetah1", "cheetah1-copy", "cheetah2",
    "lion", "quokka", "aero", "ascent", "camera", "cameraman", "astronaut", "coffee", "chelsea", "rocket",
    "horse", "moon", "page", "text", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "ihc",
    "immunohistochemistry", "retina", "china", "flower", "grace_hopper",
}
# Files whose name is a check photo's but whose photograph is another, compared pixel by pixel: the
# check photo's centre was searched for in them over scales 0.3-1.6 (normalised cross-correlation).
NOT_THE_CHECK_PHOTO = {
    "trdg/images/city.jpg": "not photos:city.jpg (Kivy's cityCC0.png): best correlation 0.36",
}


def _table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    return re.sub(r"(\.[a-z0-9]+)+$", "", name)


def _check_stems() -> set[str]:
    images = {p["image"] for path in (CHECK, COLOUR_CHECK)
              for p in json.loads(path.read_text(encoding="utf-8"))["points"]}
    stems = set()
    for image in images:
        name = re.sub(r"\[\d+\]$", "", image.split(":", 1)[-1])
        stems.add(_stem(name))
    return stems | CHECK_ALIASES


def _notice_hashes() -> set[str]:
    return set(re.findall(r"\b[0-9a-f]{64}\b", NOTICE.read_text(encoding="utf-8")))


def test_labels_are_topics_and_boxes_inside_their_photos():
    table = _table()
    photos = table["photos"]
    assert table["regions"]
    for region in table["regions"]:
        assert region["model"] == "theme"
        assert region["label"] in TOPICS, region
        assert region["photo"] in photos, region
        width, height = photos[region["photo"]]["size"]
        left, top, right, bottom = region["box"]
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, region
        assert region.get("note"), region


def test_photos_are_pinned_and_used():
    table = _table()
    used = {region["photo"] for region in table["regions"]}
    for name, photo in table["photos"].items():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", photo["wheel"]), name
        assert re.fullmatch(r"[0-9a-f]{64}", photo["sha256"]), name
        assert len(photo["size"]) == 2 and min(photo["size"]) > 0, name
        assert "ultralytics" not in photo["wheel"].lower(), "AGPL wheel"
        assert name in used, f"{name} has no region"


def test_no_photo_of_the_topic_check():
    table = _table()
    forbidden = _check_stems()
    hashes = _notice_hashes()
    for name, photo in table["photos"].items():
        assert _stem(photo["file"]) not in forbidden or photo["file"] in NOT_THE_CHECK_PHOTO, (name, photo["file"])
        assert photo["sha256"] not in hashes, (name, photo["file"])
    # one file may give several images (slices of a volume), each with its own decode
    assert len({(photo["sha256"], photo.get("decode")) for photo in table["photos"].values()}) == len(table["photos"])


def test_science_and_space_is_covered():
    regions = [r for r in _table()["regions"] if r["label"] == "Science & Space"]
    assert len(regions) >= 25
    assert len({r["photo"] for r in regions}) >= 8


def test_the_topics_version_1_missed_have_regions_on_several_photos():
    """Version 2's additions: city skylines, aerial photographs and printed pages had no region in version 1."""
    regions = _table()["regions"]
    for topic, photos in (("Architecture", 4), ("Travel & Landscape", 8), ("Books & Stationery", 3)):
        assert len({r["photo"] for r in regions if r["label"] == topic}) >= photos, topic
    assert any(r["photo"].startswith("aerial_") for r in regions)


def test_files_match_their_hashes_when_the_wheels_are_cached():
    """Needs the wheels: checks the photos whose wheel training has already downloaded (no network in
    tests; the DICOM, FITS and NIfTI scans' wheels are never fetched, as training skips them)."""
    table = _table()
    folder = wheels.cache_dir()
    cached = {re.sub(r"[-_.]+", "_", p.name.split("-")[0]).lower() + "==" + p.name.split("-")[1]
              for p in folder.glob("*.whl")} if folder.exists() else set()
    checked = 0
    for photo in table["photos"].values():
        name, version = photo["wheel"].split("==")
        if re.sub(r"[-_.]+", "_", name).lower() + "==" + version in cached:
            assert hashlib.sha256(wheels.read(photo["wheel"], photo["file"])).hexdigest() == photo["sha256"], photo
            checked += 1
    if not checked:
        pytest.skip("none of the photos' wheels is in the training cache (no download in tests)")
