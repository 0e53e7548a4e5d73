"""Web copies of the served models, as the test page (or any browser client) fetches them: the listing
points at a manifest, the manifest at content-addressed ONNX files that reproduce the server's answers
when fed a crop prepared as the manifest says."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import requests
from onnx import TensorProto, helper, numpy_helper

from fixtures import assert_error, split_image
from service.classify import imaging
from service.classify.preprocess import prepare
from service.serving.backends.web_export import half_weights
from service.serving.repository import InputSpec

RUNTIME = Path(__file__).resolve().parent.parent / "static" / "vendor" / "onnxruntime-web"


def versions(server, name):
    """The model's versions in the listing, once every API worker's copy of the runner's state shows
    version 1 serving (a copy lags the runner by up to a quarter of a second)."""
    deadline = time.monotonic() + 30
    while True:
        listing = {m["name"]: m for m in server.get("/v1/models").json()["models"]}
        found = {v["version"]: v for v in listing[name]["versions"]}
        if found[1]["state"] == "AVAILABLE" or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def manifest(server, name="tint", version=1):
    found = versions(server, name)[version]
    assert "web" in found, found
    url = found["web"]
    response = server.get(url)
    assert response.status_code == 200, response.text
    return response


def test_the_listing_links_each_serving_version_to_its_web_manifest(server):
    assert versions(server, "tint")[1]["web"] == "/v1/models/tint/versions/1/web/model.json"
    assert "web" not in versions(server, "jpeg")[1]  # its input is JPEG bytes: nothing a browser can run


def test_the_manifest_says_how_to_prepare_the_input_exactly_as_the_server_does(server):
    web = manifest(server, "bright").json()
    assert web["model"] == "bright" and web["version"] == 1
    assert web["labels"] == ["dark", "bright"] and web["softmax"] is True
    assert web["input"] == {"name": "x:0", "kind": "flat", "height": 4, "width": 4, "channels": 1,
                            "dtype": "float32", "layout": "nhwc", "scale": 1.0, "offset": 0.0,
                            "mean": [127.5], "std": [127.5]}
    assert web["output"] == "logits:0"
    assert web["crop"] == {"width": 4, "height": 4, "channels": 1, "fraction": None, "min_px": 24,
                           "box": [16, 16], "keep_aspect": False, "resize": "box"}
    assert set(web["files"]) == {"float32", "float16"}
    assert "verified against TensorFlow" in web["source"]


def test_model_files_are_named_by_their_content_and_cached_for_a_year(server):
    web = manifest(server).json()
    for variant in web["files"].values():
        response = server.get(variant["url"])
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == variant["sha256"]
        assert len(response.content) == variant["bytes"]
        assert variant["url"].endswith(variant["sha256"][:24] + ".onnx")
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_the_manifest_is_revalidated_with_its_etag(server):
    first = manifest(server)
    assert first.headers["Cache-Control"] == "no-cache"
    again = server.get("/v1/models/tint/versions/1/web/model.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_the_web_file_fed_as_the_manifest_says_answers_what_the_server_answers(server):
    photo = split_image(size=(200, 100))
    for name, point in (("tint", (10, 50)), ("tint", (199, 0)), ("bright", (150, 60))):
        web = manifest(server, name).json()
        served = server.post(f"/v1/classify?x={point[0]}&y={point[1]}&models={name}&top_k=5", data=photo,
                             headers={"Content-Type": "image/png"}).json()["predictions"][0]["results"][name]
        model = server.get(web["files"]["float32"]["url"]).content
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        i = web["input"]
        spec = InputSpec(tensor=i["name"], kind=i["kind"], height=i["height"], width=i["width"],
                         channels=i["channels"], dtype=i["dtype"], scale=i["scale"], offset=i["offset"],
                         mean=tuple(i["mean"]) if i["mean"] else None, std=tuple(i["std"]) if i["std"] else None)
        box = tuple(web["crop"]["box"]) if web["crop"]["box"] else None
        crop_spec = imaging.CropSpec(**{**web["crop"], "box": box})
        image = imaging.decode(photo, imaging.ImageLimits())
        tensor = prepare(spec, imaging.crop(image, crop_spec, *point)[None])
        row = session.run([web["output"]], {i["name"]: tensor})[0][0]
        scores = np.exp(row - row.max()) / np.exp(row - row.max()).sum() if web["softmax"] else row
        best = int(np.argmax(scores))
        assert served[0]["label"] == web["labels"][best]
        assert abs(served[0]["score"] - float(scores[best])) < 1e-5


def test_versions_without_a_web_copy_and_bad_paths_get_the_contract_errors(server):
    assert "encoded JPEG bytes" in assert_error(server.get("/v1/models/jpeg/versions/1/web/model.json"),
                                                404, "not_found")["error"]
    assert_error(server.get("/v1/models/tint/versions/9/web/model.json"), 404, "not_found")
    assert_error(server.get("/v1/models/nope/versions/1/web/model.json"), 404, "not_found")
    assert_error(server.get("/v1/models/tint/versions/one/web/model.json"), 400, "bad_request")
    assert_error(server.get("/v1/models/tint/versions/1/web/other.onnx"), 404, "not_found")
    refused = server.post("/v1/models/tint/versions/1/web/model.json", data=b"{}")
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["Allow"] == "GET, HEAD"


def test_the_page_is_cross_origin_isolated_so_the_runtime_may_use_threads(server):
    for path in ("/", "/index.html", "/static/app.js"):
        headers = server.get(path).headers
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"


def test_the_browser_runtime_is_served_from_the_repository_compressed(server):
    compressed = requests.get(f"{server.url}/static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm",
                              headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30)
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert compressed.headers["Content-Type"] == "application/wasm"
    assert compressed.raw.read() == (RUNTIME / "ort-wasm-simd-threaded.wasm.gz").read_bytes()
    plain = requests.get(f"{server.url}/static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm",
                         headers={"Accept-Encoding": "identity"}, timeout=30)
    assert "Content-Encoding" not in plain.headers
    assert plain.content == gzip.decompress((RUNTIME / "ort-wasm-simd-threaded.wasm.gz").read_bytes())
    assert plain.content[:4] == b"\0asm"
    assert server.get("/static/vendor/onnxruntime-web/ort.wasm.min.js").status_code == 200


def test_float16_weights_halve_the_file_and_keep_the_answers_close():
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.1, (64, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])], "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    halved = half_weights(model)
    onnx.checker.check_model(onnx.load_from_string(halved))
    assert len(halved) < 0.6 * len(model)
    x = rng.normal(0, 1, (4, 64)).astype(np.float32)
    full, half = (ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
                  for m in (model, halved))
    assert half.dtype == np.float32
    assert np.abs(full - half).max() < 5e-3

