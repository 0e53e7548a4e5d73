"""Cheap decoding and the decoded-image cache change costs, not answers."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
import requests
from PIL import Image

from fixtures import split_image
from service.classify import imaging

LIMITS = imaging.ImageLimits()
COLOR_LIKE = imaging.CropSpec(width=32, height=32, fraction=0.06, min_px=24)
THEME_LIKE = imaging.CropSpec(width=96, height=96, fraction=0.25, min_px=96)


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    """A 3000x2250 JPEG made from a real photograph (scikit-image's astronaut), with fine grain."""
    from skimage import data
    rng = np.random.default_rng(0)
    photo = Image.fromarray(data.astronaut()).resize((3000, 2250), Image.Resampling.BICUBIC)
    pixels = np.asarray(photo).astype(np.int16) + rng.integers(-12, 13, (2250, 3000, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_small_crops_on_a_big_jpeg_allow_a_reduced_decode():
    # A 180 px colour window for a 32 px input: 1/4 scale still gives it 45 px.
    assert imaging.reduction([COLOR_LIKE, THEME_LIKE], 4000, 3000) == 4
    assert imaging.reduction([COLOR_LIKE], 640, 360) == 1  # 24 px window, 32 px input: full scale


def test_reduced_decode_keeps_the_crops(big_photo):
    full = imaging.decode(big_photo, LIMITS)
    reduce = imaging.reduction([COLOR_LIKE, THEME_LIKE], full.width, full.height)
    reduced = imaging.decode(big_photo, LIMITS, reduce=reduce)
    assert reduce >= 2 and reduced.rgb.width < full.rgb.width
    assert (reduced.width, reduced.height) == (full.width, full.height)  # callers' coordinates unchanged
    rng = np.random.default_rng(1)
    for x, y in zip(rng.uniform(0, 3000, 16), rng.uniform(0, 2250, 16)):
        for spec in (COLOR_LIKE, THEME_LIKE):
            a = imaging.crop(full, spec, x, y).astype(np.float32)
            b = imaging.crop(reduced, spec, x, y).astype(np.float32)
            assert np.abs(a - b).mean() < 2.0, (spec, x, y, np.abs(a - b).mean())  # of 255


def test_reduced_decode_respects_exif_orientation():
    image = Image.open(io.BytesIO(split_image(size=(2400, 1200))))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: 1200 wide, 2400 high, red on top
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=92)
    decoded = imaging.decode(buffer.getvalue(), LIMITS, reduce=8)
    assert (decoded.width, decoded.height) == (1200, 2400) and decoded.rgb.size == (150, 300)
    top = imaging.crop(decoded, COLOR_LIKE, 600, 100).mean(axis=(0, 1))
    bottom = imaging.crop(decoded, COLOR_LIKE, 600, 2300).mean(axis=(0, 1))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_many_points_on_a_stored_path_pay_one_decode(server, image_root, big_photo):
    (image_root / "big.jpg").write_bytes(big_photo)
    client = requests.Session()  # one connection, so one API worker: the decoded-image cache is per worker
    first = client.post(server.url + "/v1/classify", json={"path": "big.jpg", "x": 100, "y": 100,
                                                           "models": "tint"}).json()
    again = client.post(server.url + "/v1/classify", json={"path": "big.jpg", "x": 2900, "y": 2000,
                                                           "models": "tint"}).json()
    assert again["timings_ms"]["decode"] < first["timings_ms"]["decode"] / 5


def test_a_replaced_file_is_never_served_from_the_cache(server, image_root):
    target = image_root / "changing.png"
    target.write_bytes(split_image())  # red on the left
    ask = {"path": "changing.png", "x": 10, "y": 10, "models": "tint"}
    assert server.post("/v1/classify", json=ask).json()["predictions"][0]["results"]["tint"][0]["label"] == "red"
    time.sleep(0.01)
    target.write_bytes(split_image(left=(30, 30, 220), right=(220, 30, 30)))
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 1_000_000))  # even on coarse clocks
    assert server.post("/v1/classify", json=ask).json()["predictions"][0]["results"]["tint"][0]["label"] == "blue"


def test_a_12_mp_photo_is_decoded_once_at_the_scale_the_shipped_models_allow_together():
    """color's small window, pattern's and theme's larger ones: one decode serves all three, at the
    largest scale-down that still leaves every window its model's input size."""
    from pathlib import Path

    from service.serving import repository

    repo = Path(__file__).resolve().parents[1]
    specs = {spec.name: spec.crop for spec in repository.scan(repo / "models", repo / "labels").specs}
    assert set(specs) == {"color", "theme", "pattern"}
    together = imaging.reduction(list(specs.values()), 4000, 3000)
    assert together == min(imaging.reduction([spec], 4000, 3000) for spec in specs.values()) == 4


# ---- an upload's JPEG decoded only down to the lowest row its crops read (partial_decode.py) ----

def _photo(size=(640, 360), **save) -> bytes:
    """A grainy photograph (scikit-image's coffee) as a JPEG of `size`."""
    from skimage import data
    rng = np.random.default_rng(2)
    photo = Image.fromarray(data.coffee()).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(photo).astype(np.int16) + rng.integers(-10, 11, (size[1], size[0], 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=88, **save)
    return buffer.getvalue()


SPECS = [COLOR_LIKE, THEME_LIKE,
         *(imaging.CropSpec(width=48, height=40, fraction=0.2, resize=name) for name in imaging.RESIZE_FILTERS),
         imaging.CropSpec(width=24, height=24, box=(200, 150), keep_aspect=False, resize="lanczos"),
         imaging.CropSpec(width=28, height=28, channels=1, fraction=0.1)]


@pytest.mark.parametrize("reduce", [1, 2])
def test_the_top_rows_give_the_very_crops_a_whole_decode_gives(reduce):
    photo = _photo()
    whole = imaging.decode_header(imaging.probe(photo, LIMITS), reduce)
    rng = np.random.default_rng(3)
    for x, y in [(5, 1), (320, 180), (639, 359), *zip(rng.uniform(0, 640, 30), rng.uniform(0, 360, 30))]:
        top = imaging.decode_header(imaging.probe(photo, LIMITS), reduce, (SPECS, [(x, y)]))
        for spec in SPECS:
            assert np.array_equal(imaging.crop(whole, spec, x, y), imaging.crop(top, spec, x, y)), (spec, x, y)


def test_a_point_near_the_top_leaves_the_rest_of_the_photo_undecoded():
    photo = _photo()
    top = imaging.decode_header(imaging.probe(photo, LIMITS), 1, ([COLOR_LIKE], [(320, 20)]))
    pixels = np.asarray(top.rgb)
    assert pixels[:40].any() and not pixels[60:].any()  # the window ends at row 32: never decoded below ~35
    assert (top.width, top.height, top.rgb.size) == (640, 360, (640, 360))  # coordinates as for a whole decode


@pytest.mark.parametrize("photo", [
    pytest.param(lambda: _photo(progressive=True), id="progressive: every scan before the first row"),
    pytest.param(lambda: _with_exif_orientation(_photo(), 3), id="shown upside down: its bottom is stored first"),
])
def test_jpegs_that_cannot_stop_early_are_decoded_whole(photo):
    data = photo()
    decoded = imaging.decode_header(imaging.probe(data, LIMITS), 1, ([COLOR_LIKE], [(320, 20)]))
    whole = imaging.decode(data, LIMITS)
    assert np.asarray(decoded.rgb).any(axis=(1, 2)).all()  # every row decoded
    assert np.array_equal(imaging.crop(decoded, COLOR_LIKE, 320, 20), imaging.crop(whole, COLOR_LIKE, 320, 20))


def test_a_truncated_upload_is_refused_even_where_its_top_arrived_whole():
    photo = _photo()
    cut = photo[:len(photo) * 2 // 3]  # the top half of the rows and more, no end marker
    with pytest.raises(imaging.InvalidImage, match="truncated"):
        imaging.decode_header(imaging.probe(cut, LIMITS), 1, ([COLOR_LIKE], [(320, 20)]))


def _with_exif_orientation(data: bytes, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="JPEG", exif=exif, quality=88)
    return buffer.getvalue()
