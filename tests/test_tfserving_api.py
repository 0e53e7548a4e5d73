"""Pinpoint speaks TensorFlow Serving's REST API: a client written the way TF Serving's own examples
call it works unchanged, against the same models, batching, limits and deadlines as /v1/classify."""

from __future__ import annotations

import base64

import numpy as np
import requests

from fixtures import split_image


def test_a_tf_serving_client_predicts_as_in_tf_servings_examples(server):
    url = server.url + "/v1/models/tint"
    red = np.zeros((2, 8, 8, 3), np.float32)
    red[..., 0] = 0.9
    response = requests.post(url + ":predict", json={"instances": red.tolist()})
    assert response.status_code == 200, response.text
    predictions = np.array(response.json()["predictions"])
    assert predictions.shape == (2, 3) and list(predictions.argmax(axis=1)) == [0, 0]  # red


def test_columnar_inputs_answer_outputs(server):
    blue = np.zeros((1, 8, 8, 3), np.float32)
    blue[..., 2] = 0.9
    answer = server.post("/v1/models/tint:predict", json={"inputs": blue.tolist()}).json()
    assert set(answer) == {"outputs"} and np.argmax(answer["outputs"][0]) == 2


def test_b64_images_are_whole_images_resized_as_the_crop(server):
    image = {"b64": base64.b64encode(split_image(left=(30, 200, 30), right=(30, 200, 30))).decode()}
    answer = server.post("/v1/models/tint/versions/1:predict", json={"instances": [image]}).json()
    assert np.argmax(answer["predictions"][0]) == 1  # green
    # An encoded-input graph takes the bytes themselves.
    jpeg = {"b64": base64.b64encode(split_image(fmt="JPEG", size=(16, 16), left=(220, 30, 30),
                                                right=(220, 30, 30))).decode()}
    answer = server.post("/v1/models/jpeg:predict", json={"instances": [jpeg]})
    assert answer.status_code == 200, answer.text
    assert np.argmax(answer.json()["predictions"][0]) == 0


def test_classify_answers_results_as_label_score_pairs(server):
    image = {"b64": base64.b64encode(split_image()).decode()}
    answer = server.post("/v1/models/tint:classify",
                         json={"examples": [{"image": image, "x": 10, "y": 50}, {"image": image, "x": 190, "y": 50}]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [pairs[0][0] for pairs in results] == ["red", "blue"]
    assert all(len(pair) == 2 and isinstance(pair[1], float) for pair in results[0])
    assert abs(sum(score for _, score in results[0]) - 1) < 1e-4


def test_status_and_metadata_have_tf_servings_shapes(server):
    assert server.get("/v1/models/tint").json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert server.get("/v1/models/tint/versions/1").json() == server.get("/v1/models/tint").json()
    metadata = server.get("/v1/models/bright/metadata").json()
    assert metadata["model_spec"] == {"name": "bright", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["input"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["input"]["tensor_shape"]["dim"]] == ["-1", "16"]
    assert signature["inputs"]["input"]["name"] == "x:0"
    assert [d["size"] for d in signature["outputs"]["scores"]["tensor_shape"]["dim"]] == ["-1", "2"]


def test_errors_are_tf_servings_with_its_statuses(server):
    def error(response, status):
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error", "code"} and response.json()["error"]
        return response.json()["error"]

    assert "nosuch" in error(server.get("/v1/models/nosuch"), 404)
    assert "version 7" in error(server.get("/v1/models/tint/versions/7"), 404)
    assert "cannot be supplied" in error(server.get("/v1/models/tint/versions/1/labels/stable"), 400)
    error(server.get("/v1/models/tint/labels/stable"), 404)
    error(server.post("/v1/models/tint:predict", json={"instances": [[1, 2]]}), 400)
    error(server.post("/v1/models/tint:predict", json={"instances": [], "inputs": []}), 400)
    error(server.post("/v1/models/tint:predict", data=b"{not json"), 400)
    error(server.post("/v1/models/tint:classify", json={"examples": [{"x": 1}]}), 400)
    error(server.post("/v1/models/tint:predict", json={"instances": [[[[0.5] * 3] * 8] * 8]},
                      headers={"X-Deadline-Ms": "nope"}), 400)
    error(server.delete("/v1/models/tint"), 405)
