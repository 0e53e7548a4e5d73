"""Pinpoint speaks TensorFlow Serving's REST API: a client written the way TF Serving's own examples
call it works unchanged, against the same models, batching, limits and deadlines as /v1/classify."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests

from fixtures import split_image, start_server, stop_server
from service.serving import model_run


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
    # :predict, :classify and /metadata say it in TF Serving's words (docs/api.md)
    assert error(server.get("/v1/models/nosuch/metadata"), 404) == "Servable not found for request: Latest(nosuch)"
    assert error(server.post("/v1/models/tint/versions/7:predict", json={"instances": [[[[0.5] * 3] * 8] * 8]}),
                 404) == "Servable not found for request: Specific(tint, 7)"
    assert error(server.post("/v1/models/tint/labels/gold:classify", json={"examples": [{"x": 1}]}),
                 404) == "Unrecognized servable version label: gold"
    assert "cannot be supplied" in error(server.get("/v1/models/tint/versions/1/labels/stable"), 400)
    error(server.get("/v1/models/tint/labels/stable"), 404)
    error(server.post("/v1/models/tint:predict", json={"instances": [[1, 2]]}), 400)
    error(server.post("/v1/models/tint:predict", json={"instances": [], "inputs": []}), 400)
    error(server.post("/v1/models/tint:predict", data=b"{not json"), 400)
    error(server.post("/v1/models/tint:classify", json={"examples": [{"x": 1}]}), 400)
    error(server.post("/v1/models/tint:predict", json={"instances": [[[[0.5] * 3] * 8] * 8]},
                      headers={"X-Deadline-Ms": "nope"}), 400)
    error(server.delete("/v1/models/tint"), 405)


# ---- the same scores as /v1/classify, extreme logits included ----

LOGITS_CONFIG = """
graph = "frozen_graph.pb"
backend = "tensorflow"
[input]
tensor = "input:0"
kind = "image"
height = 8
width = 8
channels = 3
scale = 0.00392156862745098
[output]
tensor = "logits:0"
softmax = {softmax}
[crop]
fraction = 0.1
min_px = 8
"""


def _logits_graph(scale: float) -> bytes:
    """Logits (mean colour - 0.5) * scale: large for 2000; for 1e39, past float32's range, infinite (the
    product overflows as the graph runs)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        mean = tf.reduce_mean(images, axis=[1, 2])
        root = tf.constant(scale ** 0.5, tf.float32)  # each factor a float32; their product need not be
        tf.identity((mean - 0.5) * root * root, name="logits")
    return graph.as_graph_def().SerializeToString()


# model -> (logit scale, softmax in model.toml): logits a softmax turns into probabilities; logits past
# float32's range; and scores given as they are, outside 0..1.
LOGIT_MODELS = {"large": (2000.0, "true"), "overflow": (1e39, "true"), "unbounded": (3.0, "false")}


@pytest.fixture(scope="module")
def logits_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("logits")
    models, labels = root / "models", root / "labels"
    labels.mkdir()
    for name, (scale, softmax) in LOGIT_MODELS.items():
        (models / name / "1").mkdir(parents=True)
        (models / name / "1" / "frozen_graph.pb").write_bytes(_logits_graph(scale))
        (models / name / "1" / "model.toml").write_text(LOGITS_CONFIG.format(softmax=softmax))
        (labels / f"{name}.txt").write_text("red\ngreen\nblue\n")
    running = start_server(root, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0"})
    yield running
    stop_server(running)


@pytest.mark.parametrize("model", sorted(LOGIT_MODELS))
def test_classify_scores_are_v1_classifys_for_the_same_crop(logits_server, model):
    # A red image: every crop, and the whole image resized, is the same colour, so :classify at a point,
    # :predict of the whole image and /v1/classify at that point all see one crop.
    image = split_image(size=(64, 64), left=(255, 0, 0), right=(255, 0, 0))
    v1 = logits_server.post(f"/v1/classify?x=32&y=32&models={model}&top_k=3", data=image,
                            headers={"Content-Type": "image/png"})
    assert v1.status_code == 200, v1.text
    expected = {label["label"]: label["score"] for label in v1.json()["predictions"][0]["results"][model]}

    encoded = {"b64": base64.b64encode(image).decode()}
    classified = logits_server.post(f"/v1/models/{model}:classify",
                                    json={"examples": [{"image": encoded, "x": 32, "y": 32}]})
    assert classified.status_code == 200, classified.text
    answered = dict(classified.json()["results"][0])
    assert answered.keys() == expected.keys()
    for label, score in answered.items():  # numbers, never NaN, within 0..1, as /v1/classify's
        assert 0.0 <= score <= 1.0 and score == pytest.approx(expected[label], abs=1e-6), (label, answered, expected)

    # :predict answers the graph's raw rows (infinities as TF Serving writes them); made into scores the
    # way every route makes them, they are /v1/classify's.
    predicted = logits_server.post(f"/v1/models/{model}:predict", json={"instances": [encoded]})
    assert predicted.status_code == 200, predicted.text
    raw = np.array(predicted.json()["predictions"], dtype=np.float64)
    scores = model_run.probabilities(raw, LOGIT_MODELS[model][1] == "true")[0]
    assert dict(zip(["red", "green", "blue"], scores)) == pytest.approx(expected, abs=1e-6)
    if model == "overflow":
        assert np.isinf(raw).all()  # so the scores above went through the nan and inf handling
