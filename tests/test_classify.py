"""POST /v1/classify in each input form, as a cURL user or a product would call it."""

from __future__ import annotations

import base64
import io
import json
import time

from PIL import Image

from fixtures import BLUE, GREEN, RED, split_image


def top(answer, model, point=0):
    return answer["predictions"][point]["results"][model][0]["label"]


def test_multipart_upload_answers_top_labels_for_every_model(server):
    response = server.post("/v1/classify", files={"image": ("split.png", split_image(), "image/png")},
                           data={"x": 20, "y": 50})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["image"] == {"width": 200, "height": 100, "format": "PNG"}
    # The image and flat graphs were converted and verified; the encoded one stays on TensorFlow.
    assert answer["models"] == {"bright": {"version": 1, "backend": "onnxruntime"},
                                "jpeg": {"version": 1, "backend": "tensorflow"},
                                "tint": {"version": 1, "backend": "onnxruntime"}}
    assert answer["errors"] == {}
    assert answer["predictions"][0]["point"] == {"x": 20, "y": 50}
    assert top(answer, "tint") == "red" and top(answer, "jpeg") == "red" and top(answer, "bright") == "dark"
    scores = [entry["score"] for entry in answer["predictions"][0]["results"]["tint"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert set(answer["timings_ms"]) >= {"decode", "infer", "total"}
    assert answer["request_id"] == response.headers["X-Request-ID"]


def test_raw_body_with_fields_in_the_query_string(server):
    response = server.post("/v1/classify?x=180&y=50", data=split_image(),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert top(response.json(), "tint") == "blue"


def test_octet_stream_body_is_accepted_too(server):
    response = server.post("/v1/classify?x=10&y=10", data=split_image(fmt="JPEG"),
                           headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.json()["image"]["format"] == "JPEG"


def test_json_with_base64_image(server):
    payload = {"image_b64": base64.b64encode(split_image()).decode(), "x": 180, "y": 10, "top_k": 2}
    answer = server.post("/v1/classify", json=payload).json()
    assert top(answer, "jpeg") == "blue"
    assert len(answer["predictions"][0]["results"]["tint"]) == 2


def test_json_with_server_side_path(server):
    answer = server.post("/v1/classify", json={"path": "nested/split.jpg", "x": 5, "y": 5}).json()
    assert top(answer, "tint") == "red"
    assert answer["image"]["format"] == "JPEG"


def test_symlink_inside_the_root_is_followed(server):
    assert server.post("/v1/classify", json={"path": "inside-link.png", "x": 5, "y": 5}).status_code == 200


def test_percent_units_span_the_image(server):
    answer = server.post("/v1/classify?x=95&y=50&units=pct", data=split_image(),
                         headers={"Content-Type": "image/png"}).json()
    assert answer["predictions"][0]["point"] == {"x": 190, "y": 50}
    assert top(answer, "tint") == "blue"
    edge = server.post("/v1/classify?x=100&y=100&units=pct", data=split_image(),
                       headers={"Content-Type": "image/png"})
    assert edge.status_code == 200


def test_many_points_answer_in_request_order(server):
    points = [[10, 10], [190, 90], [60, 50], [150, 20]]
    answer = server.post("/v1/classify", files={"image": ("s.png", split_image(), "image/png")},
                         data={"points": json.dumps(points)}).json()
    assert [p["point"] for p in answer["predictions"]] == [{"x": x, "y": y} for x, y in points]
    assert [top(answer, "tint", i) for i in range(4)] == ["red", "blue", "red", "blue"]


def test_models_selects_a_subset(server):
    answer = server.post("/v1/classify", json={"path": "split.png", "x": 5, "y": 5, "models": "tint,bright"}).json()
    assert set(answer["predictions"][0]["results"]) == {"tint", "bright"}
    assert set(answer["models"]) == {"tint", "bright"}


def test_top_k_larger_than_the_label_count_returns_every_label(server):
    answer = server.post("/v1/classify", json={"path": "split.png", "x": 5, "y": 5, "top_k": 20}).json()
    assert len(answer["predictions"][0]["results"]["tint"]) == 3


def test_crop_near_the_edge_shifts_inside_the_image(server):
    # A 3-colour strip: the window at the far-left pixel must see the left colour only.
    image = Image.new("RGB", (300, 30), GREEN)
    image.paste(RED, (0, 0, 100, 30))
    image.paste(BLUE, (200, 0, 300, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    answer = server.post("/v1/classify", files={"image": ("s.png", buffer.getvalue(), "image/png")},
                         data={"points": "[[0, 0], [150, 29], [299, 15]]", "models": "tint"}).json()
    assert [top(answer, "tint", i) for i in range(3)] == ["red", "green", "blue"]


def test_exif_rotated_jpeg_uses_displayed_coordinates(server):
    # Stored 200x100 with red on the left; orientation 6 displays it 100x200 with red on top.
    image = Image.open(io.BytesIO(split_image(fmt="PNG")))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    answer = server.post("/v1/classify", data=buffer.getvalue(), headers={"Content-Type": "image/jpeg"},
                         params={"points": "[[50, 20], [50, 180]]", "models": "tint"}).json()
    assert answer["image"]["width"] == 100 and answer["image"]["height"] == 200
    assert [top(answer, "tint", 0), top(answer, "tint", 1)] == ["red", "blue"]


def test_transparent_png_is_flattened_onto_white(server):
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # fully transparent black reads as white
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    answer = server.post("/v1/classify?x=32&y=32&models=bright", data=buffer.getvalue(),
                         headers={"Content-Type": "image/png"}).json()
    assert top(answer, "bright") == "bright"


def test_gif_webp_and_bmp_are_accepted(server):
    for fmt in ("GIF", "WEBP", "BMP"):
        response = server.post("/v1/classify?x=10&y=10&models=tint", data=split_image(fmt=fmt),
                               headers={"Content-Type": "application/octet-stream"})
        assert response.status_code == 200, (fmt, response.text)
        assert response.json()["image"]["format"] == fmt
        assert top(response.json(), "tint") == "red"


def test_animated_gif_uses_the_first_frame(server):
    frames = [Image.new("RGB", (40, 40), RED), Image.new("RGB", (40, 40), BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    answer = server.post("/v1/classify?x=20&y=20&models=tint", data=buffer.getvalue(),
                         headers={"Content-Type": "image/gif"}).json()
    assert top(answer, "tint") == "red"


def test_request_id_is_echoed_or_generated(server):
    echoed = server.post("/v1/classify", json={"path": "split.png", "x": 1, "y": 1},
                         headers={"X-Request-ID": "trace-42"})
    # The client's id is echoed for its logs; the answer's request_id, which feedback names, is the server's
    # own, so no client can choose (and claim first) the id of another's answer. The access line has both.
    answer_id = echoed.json()["request_id"]
    assert echoed.headers["X-Request-ID"] == "trace-42" and answer_id != "trace-42" and len(answer_id) == 32
    deadline = time.monotonic() + 5
    while not (lines := [json.loads(line) for line in server.log().splitlines() if "trace-42" in line]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert lines[0]["request_id"] == "trace-42" and lines[0]["answer_id"] == answer_id
    generated = server.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) >= 16
    hostile = server.get("/healthz", headers={"X-Request-ID": "<script>" * 30})
    assert hostile.headers["X-Request-ID"] != "<script>" * 30


def test_each_request_is_one_json_log_line(server):
    server.post("/v1/classify", json={"path": "split.png", "x": 1, "y": 1}, headers={"X-Request-ID": "log-me-1"})
    deadline = time.monotonic() + 5  # the line is written once the answer has gone out
    while not (lines := [json.loads(line) for line in server.log().splitlines() if "log-me-1" in line]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(lines) == 1
    assert lines[0]["status"] == 200 and lines[0]["path"] == "/v1/classify"
    assert lines[0]["timings"]["total"] > 0
    assert lines[0]["models"] == {"bright": 1, "jpeg": 1, "tint": 1} and lines[0]["client"] == "127.0.0.1"


def test_a_large_multipart_upload_streams_through(server):
    import os
    noisy = Image.frombytes("RGB", (900, 600), os.urandom(900 * 600 * 3))  # incompressible: ~1.6 MB as PNG
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    assert 1_000_000 < len(buffer.getvalue()) < 2_000_000
    response = server.post("/v1/classify", files={"image": ("noise.png", buffer.getvalue(), "image/png")},
                           data={"x": 450, "y": 300, "models": "tint"})
    assert response.status_code == 200 and response.json()["image"]["width"] == 900


def test_multipart_fields_are_checked_like_any_other(server):
    files = {"image": ("s.png", split_image(), "image/png")}
    twice = server.post("/v1/classify", files=files, data=[("x", "1"), ("x", "2"), ("y", "1")])
    assert twice.status_code == 400 and "more than once" in twice.json()["error"]
    unknown = server.post("/v1/classify", files=files, data={"x": 1, "y": 1, "colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]


def test_a_model_that_cannot_be_had_beside_one_that_can_is_a_per_model_error(server):
    """docs/api.md: per-model errors unless every requested model failed."""
    def ask(models):
        return server.post(f"/v1/classify?x=10&y=50&models={models}", data=split_image(),
                           headers={"Content-Type": "image/png"})

    answer = ask("tint@99,bright")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert list(body["predictions"][0]["results"]) == ["bright"] and list(body["models"]) == ["bright"]
    assert body["errors"] == {"tint": "model 'tint' has no version 99; versions: 1"}

    body = ask("nosuch,tint").json()
    assert top(body, "tint") == "red" and body["errors"]["nosuch"].startswith("unknown model 'nosuch'; served: ")

    # Alone, or when nothing can be had, the request fails as a whole, with the first model's error.
    from fixtures import assert_error

    assert "no version 99" in assert_error(ask("tint@99"), 404, "not_found")["error"]
    assert "no version 99" in assert_error(ask("tint@99,nosuch"), 404, "not_found")["error"]
