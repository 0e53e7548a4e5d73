"""gRPC (TF Serving's PredictionService and ModelService, the Open Inference Protocol's
GRPCInferenceService) and the Open Inference Protocol over REST, each called by its real client,
unchanged: tensorflow-serving-api's stubs, tritonclient (gRPC and HTTP), requests, curl. The answers
agree with REST :predict on the same model. One server per layout: one process here; API workers
(each serving gRPC on the shared port) in the last tests."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf  # before tensorflow_serving's protos, which import TensorFlow's
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tritonclient.utils import InferenceServerException

import graphs
from fixtures import api_worker_maps, split_image, start_grpc_server, stop_server

KEY = "grpc-s3cret"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    models, labels = graphs.write_repository(tmp_path_factory.mktemp("repo"), names=("tint", "bright", "jpeg", "slow"))
    server = start_grpc_server(tmp_path_factory.mktemp("grpc"), models, labels, env={"PINPOINT_WORKERS": "0"})
    yield server
    stop_server(server)


def rows(channel: int, n: int = 2) -> np.ndarray:
    x = np.zeros((n, 8, 8, 3), np.float32)
    x[..., channel] = 200
    x[1:, ..., (channel + 1) % 3] = 90  # the examples differ, so a mixed-up batch would show
    return x


def png(colour=(30, 200, 30)) -> bytes:
    return split_image(left=colour, right=colour)


def tfs_predict(address: str, x, metadata=(), timeout=10.0, name="tint") -> np.ndarray:
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        request.model_spec.signature_name = "serving_default"
        request.inputs["input"].CopyFrom(tf.make_tensor_proto(x))
        return tf.make_ndarray(stub.Predict(request, timeout=timeout, metadata=metadata).outputs["scores"])


def test_tf_serving_grpc_predict_agrees_with_rest_and_both_oip_transports(served):
    x = rows(2)
    rest = np.array(requests.post(served.url + "/v1/models/tint:predict", json={"instances": x.tolist()},
                                  timeout=10).json()["predictions"], np.float32)
    assert rest.shape == (2, 3) and list(rest.argmax(axis=1)) == [2, 2]
    np.testing.assert_allclose(tfs_predict(served.grpc, x), rest, rtol=1e-6, atol=1e-7)

    client = triton_grpc.InferenceServerClient(served.grpc)
    tensor = triton_grpc.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    answer = client.infer("tint", [tensor], outputs=[triton_grpc.InferRequestedOutput("scores")])
    np.testing.assert_allclose(answer.as_numpy("scores"), rest, rtol=1e-6, atol=1e-7)
    assert answer.get_response().model_version == "1"

    http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    for binary in (True, False):  # tritonclient's binary tensor extension, and plain JSON tensors
        tensor = triton_http.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        answer = http.infer("tint", [tensor], outputs=[triton_http.InferRequestedOutput("scores", binary_data=binary)])
        np.testing.assert_allclose(answer.as_numpy("scores"), rest, rtol=1e-6, atol=1e-7)

    # requests, as the protocol's JSON
    document = requests.post(served.url + "/v2/models/tint/versions/1/infer", timeout=10, json={
        "id": "a",
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}).json()
    assert document["model_name"] == "tint" and document["id"] == "a"
    (output,) = document["outputs"]
    assert output["name"] == "scores" and output["datatype"] == "FP32" and output["shape"] == [2, 3]
    np.testing.assert_allclose(np.array(output["data"], np.float32).reshape(2, 3), rest, rtol=1e-6, atol=1e-7)



def predict_encoded(address: str, model: str, data: bytes) -> np.ndarray:
    """TF Serving's gRPC Predict with one encoded image as the `input` tensor: the `scores` output."""
    with grpc.insecure_channel(address) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["input"].CopyFrom(tf.make_tensor_proto([data]))
        return tf.make_ndarray(prediction_service_pb2_grpc.PredictionServiceStub(channel)
                               .Predict(request, timeout=10).outputs["scores"])

def test_encoded_images_are_a_string_tensor_on_every_protocol(served):
    image = png()
    rest = requests.post(served.url + "/v1/models/tint:predict", timeout=10,
                         json={"instances": [{"b64": base64.b64encode(image).decode()}]}).json()["predictions"]
    assert np.argmax(rest[0]) == 1  # green
    scores = predict_encoded(served.grpc, "tint", image)
    np.testing.assert_allclose(scores, rest, rtol=1e-6, atol=1e-7)
    for module, address in ((triton_grpc, served.grpc), (triton_http, served.url.removeprefix("http://"))):
        tensor = module.InferInput("input", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([image], dtype=object))
        answer = module.InferenceServerClient(address).infer("tint", [tensor])
        np.testing.assert_allclose(answer.as_numpy("scores"), rest, rtol=1e-6, atol=1e-7)
    # A graph whose input is the encoded image itself (a DT_STRING signature) takes the bytes as they are.
    jpeg = split_image(fmt="JPEG", size=(16, 16), left=(220, 30, 30), right=(220, 30, 30))
    rest = requests.post(served.url + "/v1/models/jpeg:predict", timeout=10,
                         json={"instances": [{"b64": base64.b64encode(jpeg).decode()}]}).json()["predictions"]
    scores = predict_encoded(served.grpc, "jpeg", jpeg)
    np.testing.assert_allclose(scores, rest, rtol=1e-6, atol=1e-7)
    assert np.argmax(scores[0]) == 0  # red


def test_tf_serving_grpc_classify_metadata_and_status(served):
    image = {"b64": base64.b64encode(split_image()).decode()}
    rest = requests.post(served.url + "/v1/models/tint:classify", timeout=10,
                         json={"examples": [{"image": image, "x": 10, "y": 50}, {"image": image, "x": 190, "y": 50}]}
                         ).json()["results"]
    with grpc.insecure_channel(served.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name = "tint"
        for x in (10, 190):
            example = request.input.example_list.examples.add()
            example.features.feature["image"].bytes_list.value.append(split_image())
            example.features.feature["x"].float_list.value.append(x)
            example.features.feature["y"].float_list.value.append(50)
        result = stub.Classify(request, timeout=10)
        assert result.model_spec.name == "tint" and result.model_spec.version.value == 1
        got = [[(c.label, c.score) for c in entry.classes] for entry in result.result.classifications]
        assert [[label for label, _ in entry] for entry in got] == [[label for label, _ in entry] for entry in rest]
        assert got[0][0][0] == "red" and got[1][0][0] == "blue"
        np.testing.assert_allclose([[s for _, s in e] for e in got], [[s for _, s in e] for e in rest], rtol=1e-6)

        metadata = get_model_metadata_pb2.GetModelMetadataRequest()
        metadata.model_spec.name = "tint"
        metadata.metadata_field.append("signature_def")
        answer = stub.GetModelMetadata(metadata, timeout=10)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        answer.metadata["signature_def"].Unpack(signatures)
        signature = signatures.signature_def["serving_default"]
        assert [d.size for d in signature.inputs["input"].tensor_shape.dim] == [-1, 8, 8, 3]
        assert signature.method_name == "tensorflow/serving/predict"

        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = "tint"
        versions = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=10)
        assert [(v.version, get_model_status_pb2.ModelVersionStatus.State.Name(v.state))
                for v in versions.model_version_status] == [(1, "AVAILABLE")]

        status.model_spec.name = "nope"
        with pytest.raises(grpc.RpcError) as error:
            model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status, timeout=10)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_oip_health_and_metadata_over_both_transports(served):
    client = triton_grpc.InferenceServerClient(served.grpc)
    http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    for c in (client, http):
        assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("tint")
        assert c.is_model_ready("tint", "1") and not c.is_model_ready("tint", "9") if c is http else True
    expected = {"name": "tint", "versions": ["1"],
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 8, 8, 3]}],
                "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}]}
    metadata = http.get_model_metadata("tint")
    assert {k: metadata[k] for k in expected} == expected
    grpc_metadata = client.get_model_metadata("tint", as_json=True)
    assert [int(d) for d in grpc_metadata["inputs"][0]["shape"]] == [-1, 8, 8, 3]
    assert requests.get(served.url + "/v2/health/live", timeout=5).json() == {"live": True}


def test_oip_errors_are_the_protocols(served):
    response = requests.post(served.url + "/v2/models/nope/infer", timeout=5, json={"inputs": []})
    assert response.status_code == 404 and "error" in response.json()
    response = requests.post(served.url + "/v2/models/tint/infer", data=b"{not json", timeout=5)
    assert response.status_code == 400 and "error" in response.json()
    response = requests.post(served.url + "/v2/models/tint/infer", timeout=5, json={"inputs": [
        {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert response.status_code == 400 and "shape" in response.json()["error"]
    assert requests.get(served.url + "/v2/models/tint/infer", timeout=5).status_code == 405
    with pytest.raises(InferenceServerException) as error:
        tensor = triton_grpc.InferInput("input", [1, 3], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 3), np.float32))
        triton_grpc.InferenceServerClient(served.grpc).infer("tint", [tensor])
    assert "INVALID_ARGUMENT" in error.value.status()
    with pytest.raises(grpc.RpcError) as failure:
        tfs_predict(served.grpc, rows(0), name="nope")
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_grpc_deadline_becomes_ours(served):
    """The call's deadline is the server's: `slow` takes tens of ms, so with a few ms left the server
    itself gives up (its metrics say DEADLINE_EXCEEDED), not just the client. On a loaded machine a
    5 ms deadline can pass before the call reaches the server at all (then only the client gives up):
    such a call is tried again with a little more time."""
    route = 'route="grpc:/tensorflow.serving.PredictionService/Predict",status="DEADLINE_EXCEEDED"'
    for timeout in (0.005, 0.01, 0.02, 0.04):
        with pytest.raises(grpc.RpcError) as error:
            tfs_predict(served.grpc, rows(0), timeout=timeout, name="slow")
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 2
        while route not in requests.get(served.url + "/metrics", timeout=5).text and time.monotonic() < deadline:
            time.sleep(0.1)
        if route in requests.get(served.url + "/metrics", timeout=5).text:
            break
    else:
        pytest.fail("the server did not end the call at its deadline")
    assert tfs_predict(served.grpc, rows(0), timeout=10, name="slow").shape == (2, 3)  # and it serves on


def test_tf_servings_curl_example_with_curls_form_content_type(served):
    """TF Serving's README: curl -d '{"instances": [...]}' -X POST .../v1/models/NAME:predict (no -H):
    curl sends application/x-www-form-urlencoded; the body is still read as JSON."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    body = json.dumps({"instances": [[0.5] * 16]})
    out = subprocess.run(["curl", "-s", "-d", body, "-X", "POST", served.url + "/v1/models/bright:predict"],
                         capture_output=True, text=True, timeout=30).stdout
    rest = requests.post(served.url + "/v1/models/bright:predict", json=json.loads(body), timeout=10).json()
    assert json.loads(out) == rest and len(rest["predictions"][0]) == 2
    infer = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [0.5] * 16}]})
    out = subprocess.run(["curl", "-s", "-d", infer, "-X", "POST", served.url + "/v2/models/bright/infer"],
                         capture_output=True, text=True, timeout=30).stdout
    assert json.loads(out)["outputs"][0]["data"] == pytest.approx(rest["predictions"][0])


def test_grpc_calls_are_counted_in_the_metrics(served):
    tfs_predict(served.grpc, rows(1))
    text = requests.get(served.url + "/metrics", timeout=5).text
    assert 'route="grpc:/tensorflow.serving.PredictionService/Predict"' in text
    assert 'route="grpc:/inference.GRPCInferenceService/ModelInfer"' in text


def test_tf_servings_404_texts_on_rest_and_grpc(served):
    x = rows(0)
    for path, text in (("/v1/models/nope:predict", "Servable not found for request: Latest(nope)"),
                       ("/v1/models/tint/versions/9:predict", "Servable not found for request: Specific(tint, 9)"),
                       ("/v1/models/tint/labels/gold:predict", "Unrecognized servable version label: gold")):
        response = requests.post(served.url + path, json={"instances": x.tolist()}, timeout=10)
        assert response.status_code == 404 and response.json()["error"] == text, response.text
    with pytest.raises(grpc.RpcError) as error:
        tfs_predict(served.grpc, x, name="nope")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == "Servable not found for request: Latest(nope)"
    assert requests.get(served.url + "/v2/models/nope", timeout=5).json()["error"] == \
        "Request for unknown model: 'nope' is not found"


def test_concurrent_grpc_calls_are_batched_with_rest_ones(served):
    """gRPC calls join the same inference queue as REST: concurrent calls on `slow` (tens of ms a run)
    are run together, which the batch histogram shows as batches of more than one call's rows."""
    from concurrent.futures import ThreadPoolExecutor

    def batches_over_one() -> float:
        text = requests.get(served.url + "/metrics", timeout=5).text
        total = next(float(line.split()[-1]) for line in text.splitlines()
                     if line.startswith("pinpoint_batch_crops_count"))
        ones = next(float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith('pinpoint_batch_crops_bucket{le="1.0"}'))
        return total - ones

    before = batches_over_one()
    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(tfs_predict, served.grpc, rows(0, 1), (), 10.0, "slow") for _ in range(8)]
        calls += [pool.submit(requests.post, served.url + "/v1/models/slow:predict",
                              json={"instances": rows(0, 1).tolist()}, timeout=10) for _ in range(4)]
        results = [call.result() for call in calls]
    assert all(r.status_code == 200 for r in results[8:])
    assert batches_over_one() > before


# ---- API workers: every worker serves gRPC on the shared port; keys as metadata ----

@pytest.fixture(scope="module")
def workers(tmp_path_factory, onnx_repository):
    models, labels = onnx_repository
    server = start_grpc_server(tmp_path_factory.mktemp("grpc-workers"), models, labels, env={
        "PINPOINT_WORKERS": "2", "PINPOINT_API_KEYS": json.dumps({"tester": hashlib.sha256(KEY.encode()).hexdigest()})})
    yield server
    stop_server(server)


def test_workers_serve_grpc_with_api_keys_as_metadata(workers):
    x = rows(0)
    with pytest.raises(grpc.RpcError) as error:
        tfs_predict(workers.grpc, x)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    rest = np.array(requests.post(workers.url + "/v1/models/tint:predict", json={"instances": x.tolist()},
                                  headers={"X-API-Key": KEY}, timeout=10).json()["predictions"], np.float32)
    for _ in range(6):  # new channels, so both workers' servers answer some
        np.testing.assert_allclose(tfs_predict(workers.grpc, x, metadata=[("x-api-key", KEY)]), rest, rtol=1e-6)
        np.testing.assert_allclose(tfs_predict(workers.grpc, x, metadata=[("authorization", f"Bearer {KEY}")]),
                                   rest, rtol=1e-6)
    client = triton_grpc.InferenceServerClient(workers.grpc)
    assert client.is_server_live()  # health is open, as /healthz is
    tensor = triton_grpc.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException):
        client.infer("tint", [tensor])
    answer = client.infer("tint", [tensor], headers={"x-api-key": KEY})
    np.testing.assert_allclose(answer.as_numpy("scores"), rest, rtol=1e-6)
    assert requests.post(workers.url + "/v2/models/tint/infer", json={}, timeout=5).status_code == 401


def test_workers_never_import_tensorflow_for_the_protos(workers):
    maps = api_worker_maps(workers)
    assert len(maps) == 2

    def serving() -> list[dict]:
        return [json.loads(line) for line in workers.log().splitlines() if '"grpc_serving"' in line]

    # Ready means a worker answered /readyz; the other may still be starting (it binds the port when it is up).
    deadline = time.monotonic() + 30
    while len(serving()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    serving = serving()
    assert sorted(entry["pid"] for entry in serving) == sorted(maps)  # each on the shared port
    assert all(entry["reuse_port"] for entry in serving)
    for loaded in maps.values():
        assert "_pywrap_tensorflow" not in loaded and "libtensorflow_framework" not in loaded

