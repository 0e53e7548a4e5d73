"""Fuzzing the public surface: thousands of hostile requests, zero 5xx, and the server still answers.

Mutated images (seeded, so a failure replays), and hypothesis-generated JSON documents, query
strings and multipart bodies. Every answer must be a 2xx or the contract's JSON 4xx/503 error.
"""

from __future__ import annotations

import json
import random

import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from fixtures import split_image

FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def check(response):
    assert response.status_code < 500 or response.status_code == 503, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "code"}, body


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 10)):
        position = rng.randrange(len(data)) if data else 0
        action = rng.random()
        if action < 0.45:
            if data:
                data[position] = rng.randrange(256)
        elif action < 0.7:
            del data[position:position + rng.randint(1, 200)]
        elif action < 0.9:
            data[position:position] = rng.randbytes(rng.randint(1, 200))
        else:  # splice in a header field with an extreme value, where image parsers are weakest
            data[position:position + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
    return bytes(data)


def test_five_thousand_mutated_images(server):
    rng = random.Random(5)
    seeds = [split_image(size=size, fmt=fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP")
             for size in ((64, 48), (200, 100))]
    with requests.Session() as session:
        for i in range(5000):
            data = mutate(rng, rng.choice(seeds))
            response = session.post(f"{server.url}/v1/classify?x=10&y=10&models=tint", data=data,
                                    headers={"Content-Type": "application/octet-stream"}, timeout=30)
            check(response)
    assert server.post("/v1/classify?x=1&y=1", data=split_image(), headers={"Content-Type": "image/png"}).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20)
field_names = st.sampled_from(["x", "y", "points", "units", "models", "top_k", "path", "image_id",
                               "image_b64", "extra"])


@FUZZ
@given(st.dictionaries(field_names, json_values, max_size=6) | json_values)
def test_random_json_documents(server, document):
    check(server.post("/v1/classify", data=json.dumps(document), headers={"Content-Type": "application/json"}))


@FUZZ
@given(st.dictionaries(field_names | st.text(max_size=8), st.text(max_size=30), max_size=6))
def test_random_query_strings(server, query):
    check(server.post("/v1/classify", params=query, data=split_image(size=(40, 30)),
                      headers={"Content-Type": "image/png"}))


@FUZZ
@given(
    boundary=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30),
    parts=st.lists(st.tuples(st.sampled_from(["image", "x", "y", "points", "top_k", "units", "z", ""]),
                             st.binary(max_size=300), st.booleans(), st.binary(max_size=40)), max_size=4),
    tail=st.binary(max_size=40),
    declared=st.text(alphabet=st.characters(max_codepoint=255), max_size=40),
)
def test_random_multipart_bodies(server, boundary, parts, tail, declared):
    body = b""
    for name, value, as_file, junk in parts:
        filename = b'; filename="a.png"' if as_file else b""
        body += (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\""
                 + filename + b"\r\n" + junk + b"\r\n\r\n" + value + b"\r\n")
    body += b"--" + boundary.encode() + b"--\r\n" + tail
    content_type = f"multipart/form-data; boundary={boundary}" if not declared else \
        f"multipart/form-data; boundary={declared}"
    try:
        response = server.post("/v1/classify", data=body, headers={"Content-Type": content_type})
    except requests.exceptions.InvalidHeader:
        return  # the client library refused to send it; nothing reached the server
    check(response)


def test_server_still_answers_after_the_fuzzing(server):
    response = server.post("/v1/classify?x=180&y=50&models=tint", data=split_image(),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200 and response.json()["predictions"][0]["results"]["tint"][0]["label"] == "blue"
    assert server.process.poll() is None
