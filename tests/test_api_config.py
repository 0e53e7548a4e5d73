"""GET /v1/config: what a client needs to know about this server (the test page reads it)."""

from __future__ import annotations

import hashlib
import json

import pytest

import graphs
from fixtures import assert_error
from inprocess import InProcessServer
from service.classify.imaging import CropSpec
from service.serving.repository import scan


def test_the_config_says_what_a_client_may_do_without_revealing_paths(server, repository, image_root):
    response = server.get("/v1/config")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    config = response.json()
    assert config["image_root"] is True and config["auth"] is False
    assert config["max_body_bytes"] == 2_000_000  # the test server's limit
    assert config["max_top_k"] == 20 and config["max_points"] == 256
    assert str(image_root) not in response.text and image_root.name not in response.text


def test_each_models_crop_window_is_its_crop_spec(server, repository):
    """Everything a client needs to compute the window as service.classify.imaging.crop_box does."""
    models = server.get("/v1/config").json()["models"]
    specs = {spec.name: spec for spec in scan(*repository).specs}
    assert set(models) == set(specs)
    for name, model in models.items():
        crop = model["crop"]
        assert CropSpec(**{**crop, "box": tuple(crop["box"]) if crop["box"] else None}) == specs[name].crop
        assert model["version"] == specs[name].version
        assert model["versions"] == {str(specs[name].version): crop}  # each version's own, here just one
    assert models["bright"]["crop"]["box"] == [16, 16] and models["bright"]["crop"]["fraction"] is None
    assert models["tint"]["crop"] == {"width": 8, "height": 8, "channels": 3, "fraction": 0.1, "min_px": 8,
                                      "box": None, "keep_aspect": True, "resize": "bilinear"}


def test_the_config_takes_only_get(server):
    assert_error(server.post("/v1/config", json={}), 405, "method_not_allowed")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keyed-config")
    models, labels = graphs.write_repository(tmp, names=("tint",))
    running = InProcessServer(tmp, models, labels, env={
        "PINPOINT_API_KEYS": json.dumps({"tester": hashlib.sha256(b"s3cret").hexdigest()})}).start()
    yield running
    running.stop()


def test_with_keys_the_config_needs_one_and_says_so(keyed):
    assert_error(keyed.get("/v1/config"), 401, "unauthorized")
    config = keyed.get("/v1/config", headers={"X-API-Key": "s3cret"}).json()
    assert config["auth"] is True and config["image_root"] is False
    assert list(config["models"]) == ["tint"]
