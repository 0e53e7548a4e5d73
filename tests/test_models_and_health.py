"""Listing served models, TF Serving-style status, liveness and readiness."""

from __future__ import annotations


def test_models_lists_every_served_model_with_its_label_count(server):
    models = {m["name"]: m for m in server.get("/v1/models").json()["models"]}
    assert set(models) == {"tint", "bright", "jpeg"}
    assert models["tint"]["labels"] == 3 and models["bright"]["labels"] == 2
    assert [v["version"] for v in models["tint"]["versions"]] == [1] and models["tint"]["state"] == "AVAILABLE"
    assert models["bright"]["input"]["kind"] == "flat" and models["jpeg"]["input"]["kind"] == "encoded"


def test_model_status_in_tensorflow_serving_shape(server):
    status = server.get("/v1/models/tint").json()
    assert status == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert server.get("/v1/models/tint/versions/1").json() == status
    assert server.get("/v1/models/tint/versions/7").status_code == 404
    assert server.get("/v1/models/nosuch").json()["code"] == "not_found"


def test_health_and_readiness(server):
    assert server.get("/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
