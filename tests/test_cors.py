"""CORS (`cors_origins`): an allowed origin's preflight is answered before auth; its answers, errors
included, carry the CORS headers; any other origin gets none. Off by default (the shared server)."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from inprocess import InProcessServer

ORIGIN, KEY = "https://app.example", "cors-s3cret"


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory, repository):
    models, labels = repository
    server = InProcessServer(tmp_path_factory.mktemp("cors"), models, labels, env={
        "PINPOINT_WORKERS": "0", "PINPOINT_RATE_LIMIT_PER_S": "0", "PINPOINT_CORS_ORIGINS": json.dumps([ORIGIN]),
        "PINPOINT_API_KEYS": json.dumps({"web": hashlib.sha256(KEY.encode()).hexdigest()})}).start()
    yield server
    server.stop()


def test_a_preflight_is_answered_before_auth(cors_server):
    response = requests.options(cors_server.url + "/v1/models/tint:predict", timeout=5, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 204, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


def test_answers_and_refusals_carry_the_headers_for_an_allowed_origin_only(cors_server):
    refused = requests.get(cors_server.url + "/v1/models", headers={"Origin": ORIGIN}, timeout=5)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    answered = requests.get(cors_server.url + "/v1/models", timeout=5,
                            headers={"Origin": ORIGIN, "Authorization": f"Bearer {KEY}"})
    assert answered.status_code == 200 and answered.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-ID" in answered.headers["Access-Control-Expose-Headers"]
    other = requests.get(cors_server.url + "/v1/models", timeout=5,
                         headers={"Origin": "https://elsewhere.example", "Authorization": f"Bearer {KEY}"})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    preflight = requests.options(cors_server.url + "/v1/models", timeout=5, headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code != 204 and "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_is_off_by_default(server):
    response = server.get("/healthz", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers
