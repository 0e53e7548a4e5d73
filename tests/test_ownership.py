"""With API keys, what a key made is its own: stored images and logged answers (another key gets the 404 of
an unknown id), and the request ids feedback names are the server's, never one a client chose."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import requests

import graphs
from feedback_client import IMAGE_B64, LEFT
from fixtures import assert_error, split_image
from inprocess import InProcessServer

ALICE, BOB = {"X-API-Key": "alice-secret"}, {"X-API-Key": "bob-secret"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("owners")
    models, labels = graphs.write_repository(tmp, names=("tint",))
    keys = {name: hashlib.sha256(secret.encode()).hexdigest()
            for name, secret in (("alice", "alice-secret"), ("bob", "bob-secret"))}
    server = InProcessServer(tmp, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0",
                                                       "PINPOINT_API_KEYS": json.dumps(keys)}).start()
    yield server
    server.stop()


def classify(server, headers, **extra):
    response = server.post("/v1/classify", headers=headers,
                           json={"image_b64": IMAGE_B64, "points": [LEFT], "models": "tint", **extra})
    assert response.status_code == 200, response.text
    return response


def give(server, headers, request_id, label="red"):
    return server.post("/v1/feedback", headers=headers,
                       json={"request_id": request_id, "point": 0, "model": "tint", "label": label})


def eventually_given(server, headers, request_id, label="red"):
    """Feedback right after the answer: the log row may still be on its way (it waits, boundedly)."""
    deadline = time.monotonic() + 10
    while True:
        response = give(server, headers, request_id, label)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_a_stored_image_is_its_keys_own(keyed):
    stored = keyed.post("/v1/images", data=split_image(), headers={"Content-Type": "image/png", **ALICE})
    assert stored.status_code == 201, stored.text
    image_id = stored.json()["image_id"]
    unknown = "A" * 24
    # Bob cannot classify or delete Alice's image, and cannot tell it from one that does not exist.
    for headers in (BOB,):
        theirs = keyed.post("/v1/classify", headers=headers, json={"image_id": image_id, "x": 10, "y": 10})
        nobodys = keyed.post("/v1/classify", headers=headers, json={"image_id": unknown, "x": 10, "y": 10})
        assert_error(theirs, 404, "not_found")
        assert_error(nobodys, 404, "not_found")
        assert theirs.json()["error"].replace(image_id, unknown) == nobodys.json()["error"]
        assert_error(keyed.delete(f"/v1/images/{image_id}", headers=headers), 404, "not_found")
    # Alice still has it: Bob's delete did nothing.
    mine = keyed.post("/v1/classify", headers=ALICE, json={"image_id": image_id, "x": 10, "y": 10, "models": "tint"})
    assert mine.status_code == 200, mine.text
    assert keyed.delete(f"/v1/images/{image_id}", headers=ALICE).status_code == 200
    assert_error(keyed.delete(f"/v1/images/{image_id}", headers=ALICE), 404, "not_found")


def test_a_logged_answer_takes_feedback_from_its_key_only(keyed):
    request_id = classify(keyed, ALICE).json()["request_id"]
    assert eventually_given(keyed, ALICE, request_id).status_code == 201
    # Bob can neither add nor overwrite feedback on Alice's answer: the 404 of an unknown id.
    assert_error(give(keyed, BOB, request_id, "blue"), 404, "not_found")
    assert_error(give(keyed, BOB, "f" * 32, "blue"), 404, "not_found")
    again = give(keyed, ALICE, request_id, "blue")
    assert again.status_code == 200 and again.json()["label"] == "blue"


def test_a_client_chosen_request_id_cannot_be_claimed_by_another_key(keyed):
    chosen = "order-4711"
    bobs = classify(keyed, {**BOB, "X-Request-ID": chosen})
    alices = classify(keyed, {**ALICE, "X-Request-ID": chosen})
    for answer in (bobs, alices):
        assert answer.headers["X-Request-ID"] == chosen  # echoed, for the client's own logs
        assert answer.json()["request_id"] != chosen  # the answer's id, that feedback names, is the server's
    assert bobs.json()["request_id"] != alices.json()["request_id"]
    # Bob came first, yet Alice's answer is hers: her feedback is taken, Bob's on her answer is not.
    assert eventually_given(keyed, ALICE, alices.json()["request_id"]).status_code == 201
    assert_error(give(keyed, BOB, alices.json()["request_id"]), 404, "not_found")
    assert_error(give(keyed, BOB, chosen), 404, "not_found")  # the chosen id was never a log key
    assert eventually_given(keyed, BOB, bobs.json()["request_id"]).status_code == 201


def test_without_a_client_id_the_header_and_the_answer_agree(keyed):
    answer = classify(keyed, ALICE)
    assert answer.headers["X-Request-ID"] == answer.json()["request_id"]
    assert len(answer.json()["request_id"]) == 32
    assert requests.get(keyed.url + "/healthz", timeout=10).headers["X-Request-ID"]
