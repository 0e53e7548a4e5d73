"""Bad input gets the contract's JSON error with the right status, quickly, and the server keeps serving."""

from __future__ import annotations

import io
import json
import socket

import pytest
import requests
from PIL import Image

from fixtures import assert_error, decompression_bomb, split_image


def raw(server, data, query="x=1&y=1", content_type="image/png"):
    return server.post(f"/v1/classify?{query}", data=data, headers={"Content-Type": content_type})


class Exchange:
    """What the server answered to bytes sent on a raw socket (no client library to tidy them)."""

    def __init__(self, server, request: bytes):
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            reply = b""
            while chunk := sock.recv(65536):  # until the server closes: headers and body may come apart
                reply += chunk
        head, _, self.text = reply.decode("latin-1").partition("\r\n\r\n")
        status_line, *lines = head.split("\r\n")
        self.status_code = int(status_line.split()[1])
        self.headers = requests.structures.CaseInsensitiveDict(line.split(": ", 1) for line in lines)

    def json(self):
        return json.loads(self.text)


def test_bytes_that_are_not_an_image(server):
    assert_error(raw(server, b"hello, not an image"), 400, "invalid_image")
    files = {"image": ("a.png", b"\x89PNG\r\n\x1a\n garbage", "image/png")}
    assert_error(server.post("/v1/classify", files=files, data={"x": 1, "y": 1}), 400, "invalid_image")


def test_empty_body(server):
    assert_error(raw(server, b""), 400, "invalid_image")


def test_truncated_jpeg(server):
    jpeg = split_image(size=(400, 300), fmt="JPEG")
    assert_error(raw(server, jpeg[: len(jpeg) // 2], content_type="image/jpeg"), 400, "invalid_image")


def test_point_outside_the_image(server):
    body = assert_error(raw(server, split_image(), "x=200&y=10"), 400, "point_out_of_bounds")
    assert "200x100" in body["error"]
    assert_error(raw(server, split_image(), "x=-1&y=10"), 400, "point_out_of_bounds")
    assert_error(raw(server, split_image(), "x=50&y=101&units=pct"), 400, "point_out_of_bounds")
    assert_error(raw(server, split_image(), "points=[[1,1],[5,500]]"), 400, "point_out_of_bounds")


@pytest.mark.parametrize("query", [
    "x=1", "y=1", "x=abc&y=1", "x=nan&y=1", "x=inf&y=1", "x=1&y=1&units=inch", "x=1&y=1&top_k=0",
    "x=1&y=1&top_k=21", "x=1&y=1&top_k=two", "points=[[1]]", "points=nope", "points=[]",
    "x=1&y=1&points=[[1,1]]", "x=1&y=1&colour=red", "x=1&x=2&y=1",
])
def test_malformed_fields(server, query):
    assert_error(raw(server, split_image(), query), 400, "bad_request")


@pytest.mark.parametrize("payload", [
    [1, 2], "text", {"x": 1, "y": 1}, {"image_b64": "***", "x": 1, "y": 1},
    {"image_b64": 5, "x": 1, "y": 1}, {"path": "split.png", "image_id": "abc", "x": 1, "y": 1},
    {"path": "split.png", "x": True, "y": 1}, {"path": "split.png", "x": "1", "y": [1]},
    {"path": 7, "x": 1, "y": 1}, {"path": "split.png", "points": [[1, 2, 3]]},
])
def test_malformed_json(server, payload):
    assert_error(server.post("/v1/classify", json=payload), 400, "bad_request")


@pytest.mark.parametrize("payload, message", [
    ({"x": "12", "y": 10}, "x must be a JSON number, not the string '12'"),
    ({"points": [[10, "12"]]}, "points[0][1] must be a JSON number, not the string '12'"),
    ({"points": "[[10, 12]]"}, "points must be a JSON array of [x, y] pairs, not a string"),
    ({"x": 10, "y": 10, "top_k": "3"}, "top_k must be a JSON integer, not the string '3'"),
])
def test_json_numbers_are_numbers_not_strings(server, payload, message):
    body = assert_error(server.post("/v1/classify", json={"path": "split.png", **payload}), 400, "bad_request")
    assert body["error"] == message
    # The same values as form or query fields are text by nature, and accepted.
    assert raw(server, split_image(), "x=12&y=10&top_k=3&models=tint").status_code == 200


def test_invalid_json_text(server):
    response = server.post("/v1/classify", data=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "bad_request")


def test_multipart_without_an_image_field(server):
    response = server.post("/v1/classify", files={"picture": ("a.png", split_image(), "image/png")},
                           data={"x": 1, "y": 1})
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("path", [
    "../secret.png", "nested/../../secret.png", "/etc/passwd", "escape.png", "~/x.png", "..\\x.png",
])
def test_paths_outside_the_image_root_are_forbidden(server, path):
    assert_error(server.post("/v1/classify", json={"path": path, "x": 1, "y": 1}), 403, "path_forbidden")


def test_missing_path_is_not_found(server):
    assert_error(server.post("/v1/classify", json={"path": "nope.png", "x": 1, "y": 1}), 404, "not_found")


def test_a_text_file_under_the_root_is_invalid_and_never_echoed(server):
    body = assert_error(server.post("/v1/classify", json={"path": "notes.txt", "x": 1, "y": 1}), 400, "invalid_image")
    assert "secret" not in body["error"]


def test_unknown_model(server):
    # Alone it fails the request; beside a working model it is that model's error in a 200 (test_classify).
    assert_error(raw(server, split_image(), "x=1&y=1&models=nosuch"), 404, "not_found")


def test_unknown_image_id(server):
    response = server.post("/v1/classify", json={"image_id": "A" * 24, "x": 1, "y": 1})
    assert_error(response, 404, "not_found")
    response = server.post("/v1/classify", json={"image_id": "../../etc/passwd", "x": 1, "y": 1})
    assert_error(response, 404, "not_found")


def test_unsupported_content_type(server):
    response = server.post("/v1/classify?x=1&y=1", data=b"x=1", headers={"Content-Type": "text/plain"})
    assert_error(response, 415, "unsupported_media_type")


def test_image_format_not_allowed(server):
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, format="TIFF")
    assert_error(raw(server, buffer.getvalue(), content_type="image/tiff"), 415, "unsupported_media_type")


def test_body_over_the_limit_is_refused_before_reading(server):
    # The test server's limit is 2,000,000 bytes (1.9 MB of 2**20 bytes).
    body = assert_error(raw(server, b"\0" * 2_500_000), 413, "payload_too_large")
    assert body["error"] == "the body is 2.4 MB; the limit is 1.9 MB"


def test_decompression_bomb_is_refused_from_the_header(server):
    response = raw(server, decompression_bomb())
    body = assert_error(response, 413, "image_too_large")
    assert body["error"] == "the image is 50000×50000 (2,500 MP); the limit is 40 MP"
    assert response.elapsed.total_seconds() < 1
    body = assert_error(raw(server, decompression_bomb(7_000, 7_000)), 413, "image_too_large")
    assert body["error"] == "the image is 7000×7000 (49 MP); the limit is 40 MP"
    body = assert_error(raw(server, decompression_bomb(12_001, 10)), 413, "image_too_large")
    assert body["error"] == "the image is 12001×10; the limit is 12,000 px a side"


def test_unknown_route_and_wrong_method_are_json(server):
    assert_error(server.get("/v2/nothing"), 404, "not_found")
    assert_error(server.post("/v2/nothing", data=b"x"), 404, "not_found")
    for path in ("/v1/classify/x", "/v1/images/a/b", "/metrics/x", "/x"):  # 404 before a length is asked for
        assert_error(Exchange(server, f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()),
                     404, "not_found")
    response = server.get("/v1/classify")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/v1/models", "GET, HEAD"),  # no body: the method is refused before a length is asked for
    ("PUT", "/v1/models/tint", "GET, HEAD, POST"),
    ("GET", "/v1/images", "POST"),
    ("PUT", "/v1/config", "GET, HEAD"),
    ("PUT", "/v1/images/" + "A" * 24, "DELETE"),
    ("POST", "/", "GET, HEAD"),
    ("DELETE", "/", "GET, HEAD"),
    ("POST", "/healthz", "GET, HEAD"),
    ("POST", "/readyz", "GET, HEAD"),
    ("POST", "/metrics", "GET, HEAD"),
    ("POST", "/static/app.js", "GET, HEAD"),
])
def test_each_resource_refuses_the_methods_it_does_not_take(server, method, path, allow):
    response = Exchange(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    body = assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow
    assert body["error"].startswith(f"{method} is not allowed here; use ")


def test_a_path_out_of_the_static_directory_is_not_found(server):
    response = Exchange(server, b"GET /static/../service/config.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("request_bytes, status, code, message", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n", 413, "payload_too_large",
     "the request line and headers pass the limit of 500 KB"),
    (b"NONSENSE\r\n\r\n", 400, "bad_request", "Malformed Request-Line"),
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505, "bad_request", "this server speaks HTTP/1.0 and HTTP/1.1 only"),
    (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "bad_request",
     "the only Transfer-Encoding accepted is chunked"),
])
def test_malformed_http_is_answered_in_json_too(server, request_bytes, status, code, message):
    """These never reach CherryPy: cheroot, its HTTP server, refuses them (service/http/server.py)."""
    response = Exchange(server, request_bytes)
    assert assert_error(response, status, code)["error"] == message
    assert response.headers["Connection"] == "close"


def test_body_without_length_is_refused(server):
    # A raw socket, so no client library fills in Content-Length.
    import socket
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/classify?x=1&y=1 HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):  # until the server closes: headers and body may come apart
            reply += chunk
        reply = reply.decode("latin-1")
    assert reply.startswith("HTTP/1.1 411") or reply.startswith("HTTP/1.1 400")
    assert '"code"' in reply


def test_server_keeps_serving_after_bad_input(server):
    for data in (b"", b"junk", decompression_bomb(), split_image(fmt="JPEG")[:100]):
        raw(server, data)
    try:
        server.post("/v1/classify?x=1&y=1", data=b"\x89PNG" + b"\0" * 100, headers={"Content-Type": "image/png",
                    "Content-Length": "5"}, timeout=5)
    except requests.RequestException:
        pass
    response = raw(server, split_image(), "x=10&y=10&models=tint")
    assert response.status_code == 200
    assert server.alive()


def test_mutated_images_never_get_a_server_error(server):
    """A small seeded fuzz: flipped, cut and spliced bytes of real files give 200 or a 4xx JSON error."""
    import random
    rng = random.Random(2)
    seeds = [split_image(fmt=fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP")]
    for _ in range(150):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[position] = rng.randrange(256)
            elif choice < 0.8:
                del data[position:position + rng.randint(1, 64)]
            else:
                data[position:position] = rng.randbytes(rng.randint(1, 64))
        response = raw(server, bytes(data), "x=10&y=10&models=tint")
        assert response.status_code < 500, response.text
        assert response.status_code == 200 or response.json()["code"]
    assert raw(server, split_image(), "x=10&y=10").status_code == 200
