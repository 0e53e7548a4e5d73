"""The two-step flow: store an image once, classify many points by image_id, delete it."""

from __future__ import annotations

import time

import pytest

from fixtures import assert_error, split_image
from service.classify.image_store import ImageStore
from service.errors import NotFound


def test_store_then_classify_by_id_then_delete(server):
    stored = server.post("/v1/images", files={"image": ("s.png", split_image(), "image/png")})
    assert stored.status_code == 201
    body = stored.json()
    assert (body["width"], body["height"], body["format"]) == (200, 100, "PNG")
    image_id = body["image_id"]
    assert len(image_id) >= 22 and "/" not in image_id

    answer = server.post("/v1/classify", json={"image_id": image_id, "points": [[10, 10], [190, 10]],
                                               "models": "tint"}).json()
    assert [p["results"]["tint"][0]["label"] for p in answer["predictions"]] == ["red", "blue"]

    assert server.delete(f"/v1/images/{image_id}").json() == {"image_id": image_id, "deleted": True}
    gone = server.post("/v1/classify", json={"image_id": image_id, "x": 1, "y": 1})
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert server.delete(f"/v1/images/{image_id}").status_code == 404


def test_raw_body_upload(server):
    stored = server.post("/v1/images", data=split_image(fmt="JPEG"), headers={"Content-Type": "image/jpeg"})
    assert stored.status_code == 201 and stored.json()["format"] == "JPEG"


def test_a_json_body_is_refused_with_what_this_route_accepts(server):
    refused = server.post("/v1/images", json={"image_b64": "iVBORw0KGgo="})
    body = assert_error(refused, 415, "unsupported_media_type")
    assert body["error"] == ("Content-Type application/json is not accepted here: send multipart/form-data "
                             "or the image itself (image/* or application/octet-stream)")


def test_what_is_not_an_image_is_not_stored(server):
    refused = server.post("/v1/images", data=b"plain text", headers={"Content-Type": "image/png"})
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_image"


def test_ids_are_unguessable_and_never_paths(server):
    ids = {server.post("/v1/images", data=split_image(), headers={"Content-Type": "image/png"}).json()["image_id"]
           for _ in range(5)}
    assert len(ids) == 5
    assert server.delete("/v1/images/..%2f..%2fetc%2fpasswd").status_code == 404


def test_store_forgets_expired_images_and_keeps_under_its_cap(tmp_path):
    store = ImageStore(tmp_path, max_total_bytes=2500, retention_s=3600)
    first = store.put(b"a" * 1000)
    time.sleep(0.01)
    second = store.put(b"b" * 1000)
    time.sleep(0.01)
    third = store.put(b"c" * 1000)  # over the cap: the oldest goes
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([second, third])
    assert store.path(third).read_bytes() == b"c" * 1000
    short = ImageStore(tmp_path, max_total_bytes=10_000, retention_s=0.01)
    time.sleep(0.05)
    assert short.sweep() == 2
    assert first  # was an id


def test_each_keys_images_are_its_own_and_the_cap_counts_them_all(tmp_path):
    store = ImageStore(tmp_path, max_total_bytes=2500, retention_s=3600)
    alices = store.put(b"a" * 1000, owner="alice")
    time.sleep(0.01)
    open_one = store.put(b"o" * 1000)  # stored with auth off: no key's
    with pytest.raises(NotFound):
        store.path(alices, owner="bob")
    with pytest.raises(NotFound):
        store.path(alices)  # not even without a key
    with pytest.raises(NotFound):
        store.delete(alices, owner="bob")
    assert store.path(alices, owner="alice").read_bytes() == b"a" * 1000
    assert store.path(open_one, owner="bob").read_bytes() == b"o" * 1000  # anyone's
    assert "alice" not in str(store.path(alices, owner="alice"))  # the name's digest, never the name
    time.sleep(0.01)
    store.put(b"b" * 1000, owner="bob")  # over the cap across every key: Alice's, the oldest, goes
    with pytest.raises(NotFound):
        store.path(alices, owner="alice")
    store.delete(open_one, owner="bob")
