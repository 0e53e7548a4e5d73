"""The labelled regions on photographs from PyPI wheels that part of the demo models' training set is
cut from (service/tools/train/regions.py). No network here: the table is checked as written, and the
cutting runs on a wheel this test builds in a temporary cache."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from service.tools.train import demos, realcheck, regions


@pytest.fixture
def own_table(tmp_path, monkeypatch):
    """A wheel holding one photograph (left half red, right half blue) and a table naming it."""
    image = Image.new("RGB", (400, 300), (200, 30, 30))
    image.paste((20, 40, 210), (200, 0, 400, 300))
    data = io.BytesIO()
    image.save(data, "PNG")
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "Some_Pkg-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("some_pkg/photo.png", data.getvalue())
    table = {"photos": {"halves": {"wheel": "some-pkg==1.0", "file": "some_pkg/photo.png",
                                   "sha256": hashlib.sha256(data.getvalue()).hexdigest()}},
             "regions": [{"photo": "halves", "model": "color", "label": "red", "box": [20, 20, 150, 280]},
                         {"photo": "halves", "model": "color", "label": "blue", "box": [250, 20, 380, 280]}]}
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(table))
    monkeypatch.setenv("PINPOINT_TRAIN_CACHE", str(cache))
    monkeypatch.setattr(regions, "TABLE", path)
    for cached in (regions.table, regions.photo):
        cached.cache_clear()
    yield table
    for cached in (regions.table, regions.photo):
        cached.cache_clear()


@pytest.mark.parametrize("name", demos.NAMES)
def test_every_region_names_a_label_of_its_model_inside_a_known_photo(name):
    demo, table = demos.get(name), regions.table()
    for region in regions.regions(name):
        assert region["label"] in demo.labels, region
        assert region["photo"] in table["photos"], region
        left, top, right, bottom = region["box"]
        assert 0 <= left < right and 0 <= top < bottom, region
        assert region.get("note"), region


def test_no_training_photo_is_a_photo_of_the_real_photo_check():
    checked = {point["image"] for point in json.loads(realcheck.DEFAULT_POINTS.read_text())["points"]}
    files = {entry["file"].rsplit("/", 1)[-1] for entry in regions.table()["photos"].values()}
    assert not files & {name.partition(":")[2] or name for name in checked}
    for entry in regions.table()["photos"].values():
        assert "==" in entry["wheel"] and len(entry["sha256"]) == 64  # pinned, and checked byte for byte


def test_a_patch_is_the_window_pinpoint_crops_around_a_point_of_the_region(own_table):
    rng = np.random.default_rng(0)
    red = own_table["regions"][0]
    for _ in range(20):
        patch = regions.patch(rng, red, 32, 0.06, 24, "bilinear")
        assert patch.shape == (32, 32, 3) and patch.dtype == np.uint8
        centre = patch[12:20, 12:20].reshape(-1, 3).mean(axis=0)
        assert centre[0] > 150 and centre[2] < 80  # the point's colour, whatever the window's edge holds
    # Beside the boundary the window holds both halves, as Pinpoint's own crop there would.
    edge = dict(red, box=[195, 100, 199, 200])
    for _ in range(20):
        patch = regions.patch(rng, edge, 32, 0.06, 24, "bilinear")
        assert patch[:, :8, 0].mean() > 150 and patch[:, -4:, 2].mean() > 150


def test_mixing_replaces_a_share_of_each_labelled_label_and_keeps_the_set_size(own_table):
    names = ("red", "green", "blue")
    labels = np.repeat(np.arange(3), 100)
    images = np.zeros((300, 32, 32, 3), np.uint8)
    mixed = regions.mix(images, labels, names, "color", 0.3, seed=0, size=32, fraction=0.06, min_px=24,
                        resize="bilinear")
    assert mixed.shape == images.shape and np.array_equal(labels, np.repeat(np.arange(3), 100))  # labels kept
    changed = mixed.reshape(300, -1).any(axis=1)
    per_label = np.bincount(labels[changed], minlength=3)
    assert list(per_label) == [8, 0, 8]  # one region each: PER_REGION (8%) of its label's patches
    assert mixed[labels == 0][changed[labels == 0]][:, 16, 16, 0].min() > 150  # red where red was labelled
    assert not images.any()  # the caller's set is left alone


def test_a_photo_that_differs_from_its_checksum_is_refused(own_table, tmp_path, monkeypatch):
    table = dict(own_table, photos={"halves": dict(own_table["photos"]["halves"], sha256="0" * 64)})
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(table))
    monkeypatch.setattr(regions, "TABLE", path)
    regions.table.cache_clear()
    with pytest.raises(ValueError, match="SHA-256"):
        regions.photo("halves")


def test_train_demo_refuses_a_real_share_outside_zero_to_one(capsys):
    from service.tools.train.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["--real-share", "1.5", "--quick", "--no-card"])
    assert stopped.value.code == 2
    assert "--real-share 1.5" in capsys.readouterr().err
