"""A TF Serving user's SavedModel with several named inputs and outputs, and several signatures, served
as it is (docs/models.md, "Serving a SavedModel"): a Keras functional model taking `a` [batch, 3] and
`b` [batch, 2] and giving `sum` [batch, 1] and `prob` [batch, 3], saved with two signatures
(serving_default: both outputs; probabilities: `prob` only), in a temporary repository of a real server
with API workers and gRPC. Its answers over REST :predict (row and columnar), gRPC Predict
(tensorflow-serving-api's stubs) and the Open Inference Protocol (tritonclient HTTP and gRPC) equal
Keras's own, on ONNX Runtime (tf2onnx, verified) and on TensorFlow; bad inputs are TF Serving's 400s."""

from __future__ import annotations

import shutil

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import graphs
from browser_page import needs_chromium, open_page
from fixtures import api_worker_maps, split_image, start_server, stop_server
from service.serving import repository

# "pair" is converted to ONNX (backend auto); "pair_tf" is the same SavedModel with a model.toml that
# only says backend = "tensorflow"; "exported" is model.export's (signatures serve and serving_default).
MODELS = ("pair", "pair_tf", "exported")


def keras_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(5)
    a, b = tf.keras.Input((3,), name="a"), tf.keras.Input((2,), name="b")
    hidden = tf.keras.layers.Dense(8, activation="relu")(tf.keras.layers.Concatenate()([a, b]))
    outputs = {"sum": tf.keras.layers.Dense(1, name="sum")(hidden),
               "prob": tf.keras.layers.Dense(3, activation="softmax", name="prob")(hidden)}
    return tf.keras.Model({"a": a, "b": b}, outputs)


class TwoSignatures(tf.Module):
    def __init__(self, model: tf.keras.Model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="a"),
                                  tf.TensorSpec([None, 2], tf.float32, name="b")])
    def serve(self, a, b):
        return self.model({"a": a, "b": b})

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="a"),
                                  tf.TensorSpec([None, 2], tf.float32, name="b")])
    def probabilities(self, a, b):
        return {"prob": self.model({"a": a, "b": b})["prob"]}


class NonNegative(tf.Module):
    """A signature whose input has no known rank and whose graph refuses a negative value when it runs:
    what no check before the run can see."""

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="x")])
    def serve(self, x):
        with tf.control_dependencies([tf.debugging.assert_non_negative(x, message="x must be >= 0")]):
            return {"y": x * 2.0}


def examples(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.uniform(-1, 1, (n, 3)).astype(np.float32), rng.uniform(-1, 1, (n, 2)).astype(np.float32)


def expected(model, a, b) -> dict[str, np.ndarray]:
    return {name: value.numpy() for name, value in model({"a": a, "b": b}).items()}


def close(have, want) -> None:
    np.testing.assert_allclose(np.asarray(have, np.float32), want, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    model = keras_model()
    module = TwoSignatures(model)
    tf.saved_model.save(module, str(root / "two"),
                        signatures={"serving_default": module.serve, "probabilities": module.probabilities})
    model.export(str(root / "exported"))
    models, labels = root / "repo" / "models", root / "repo" / "labels"
    labels.mkdir(parents=True)
    shutil.copytree(root / "two", models / "pair" / "1")
    shutil.copytree(root / "two", models / "pair_tf" / "1")
    (models / "pair_tf" / "1" / "model.toml").write_text('backend = "tensorflow"\n')
    shutil.copytree(root / "exported", models / "exported" / "1")
    guarded = NonNegative()
    tf.saved_model.save(guarded, str(models / "guarded" / "1"), signatures={"serving_default": guarded.serve})
    (models / "guarded" / "1" / "model.toml").write_text('backend = "tensorflow"\n')
    return model, models, labels


def test_the_repository_serves_it_as_named_tensors(saved):
    _, models, labels = saved
    discovery = repository.scan(models, labels)
    assert discovery.problems == {}
    spec = discovery.versions["pair"][1]
    assert spec.tensors_only and spec.signature_name == "serving_default"
    assert [t.key for t in spec.signature.inputs] == ["a", "b"]
    assert discovery.versions["pair_tf"][1].backend == "tensorflow"


def test_each_backend_is_said_and_why(served):
    listing = requests.get(f"{served.url}/v1/models", timeout=30).json()["models"]
    status = {entry["name"]: entry["versions"][0] for entry in listing}
    for name in ("pair", "exported"):
        assert status[name]["backend"] == "onnxruntime", status[name]
        assert "verified against TensorFlow" in status[name]["backend_reason"]
    assert status["pair"]["backend_reason"].count("'") >= 4  # both signatures named
    assert status["pair_tf"]["backend"] == "tensorflow"
    pair = next(entry for entry in listing if entry["name"] == "pair")
    assert pair["input"] == {"kind": "tensors", "height": None, "width": None, "channels": None}
    assert "web" not in status["pair"]  # no web copy: it takes no crop


@pytest.mark.parametrize("name", MODELS)
def test_rest_predict_row_form_gives_a_list_of_objects(saved, served, name):
    model = saved[0]
    a, b = examples()
    want = expected(model, a, b)
    answer = requests.post(f"{served.url}/v1/models/{name}:predict", timeout=30,
                           json={"instances": [{"a": x.tolist(), "b": y.tolist()} for x, y in zip(a, b)]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == 3 and set(predictions[0]) == {"sum", "prob"}
    close([p["sum"] for p in predictions], want["sum"])
    close([p["prob"] for p in predictions], want["prob"])


@pytest.mark.parametrize("name", MODELS)
def test_rest_predict_columnar_form_gives_an_object(saved, served, name):
    model = saved[0]
    a, b = examples(2)
    want = expected(model, a, b)
    answer = requests.post(f"{served.url}/v1/models/{name}/versions/1:predict", timeout=30,
                           json={"inputs": {"a": a.tolist(), "b": b.tolist()}})
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    close(outputs["sum"], want["sum"])
    close(outputs["prob"], want["prob"])


@pytest.mark.parametrize("name", ["pair", "pair_tf"])
def test_signature_name_chooses_the_other_signature_over_rest(saved, served, name):
    model = saved[0]
    a, b = examples(2)
    answer = requests.post(f"{served.url}/v1/models/{name}:predict", timeout=30,
                           json={"signature_name": "probabilities", "inputs": {"a": a.tolist(), "b": b.tolist()}})
    assert answer.status_code == 200, answer.text
    close(answer.json()["outputs"], expected(model, a, b)["prob"])  # one output: the tensor itself
    instances = [{"a": a[0].tolist(), "b": b[0].tolist()}]
    row = requests.post(f"{served.url}/v1/models/{name}:predict", timeout=30,
                        json={"signature_name": "probabilities", "instances": instances})
    assert row.status_code == 200, row.text
    close(row.json()["predictions"], expected(model, a, b)["prob"][:1])


def _predict_request(name: str, a, b, signature: str = "", output_filter=()) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.inputs["a"].CopyFrom(tf.make_tensor_proto(a))
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(b))
    request.output_filter.extend(output_filter)
    return request


@pytest.mark.parametrize("name", MODELS)
def test_grpc_predict_answers_every_output_or_those_filtered(saved, served, name):
    model = saved[0]
    a, b = examples(2)
    want = expected(model, a, b)
    with grpc.insecure_channel(served.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(_predict_request(name, a, b), timeout=30)
        assert set(response.outputs) == {"sum", "prob"}
        close(tf.make_ndarray(response.outputs["sum"]), want["sum"])
        close(tf.make_ndarray(response.outputs["prob"]), want["prob"])
        assert response.model_spec.signature_name == "serving_default"
        filtered = stub.Predict(_predict_request(name, a, b, output_filter=["prob"]), timeout=30)
        assert set(filtered.outputs) == {"prob"}


@pytest.mark.parametrize("name", ["pair", "pair_tf"])
def test_grpc_predict_with_signature_name(saved, served, name):
    model = saved[0]
    a, b = examples(2)
    with grpc.insecure_channel(served.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(_predict_request(name, a, b, "probabilities"), timeout=30)
        assert response.model_spec.signature_name == "probabilities" and set(response.outputs) == {"prob"}
        close(tf.make_ndarray(response.outputs["prob"]), expected(model, a, b)["prob"])
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(_predict_request(name, a, b, "nope"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == 'Serving signature key "nope" not found.'


def _triton_inputs(module, a, b):
    inputs = [module.InferInput("a", list(a.shape), "FP32"), module.InferInput("b", list(b.shape), "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return inputs


@pytest.mark.parametrize("name", ["pair", "pair_tf"])
def test_open_inference_protocol_over_http(saved, served, name):
    model = saved[0]
    a, b = examples(2)
    want = expected(model, a, b)
    client = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    metadata = client.get_model_metadata(name)
    assert [t["name"] for t in metadata["inputs"]] == ["a", "b"]
    assert [t["name"] for t in metadata["outputs"]] == ["prob", "sum"]
    answer = client.infer(name, _triton_inputs(triton_http, a, b))
    close(answer.as_numpy("sum"), want["sum"])
    close(answer.as_numpy("prob"), want["prob"])
    only = client.infer(name, _triton_inputs(triton_http, a, b), outputs=[triton_http.InferRequestedOutput("sum")])
    assert only.as_numpy("prob") is None
    close(only.as_numpy("sum"), want["sum"])
    other = client.infer(name, _triton_inputs(triton_http, a, b), parameters={"signature_name": "probabilities"})
    assert other.as_numpy("sum") is None
    close(other.as_numpy("prob"), want["prob"])


@pytest.mark.parametrize("name", ["pair", "pair_tf"])
def test_open_inference_protocol_over_grpc(saved, served, name):
    model = saved[0]
    a, b = examples(2)
    want = expected(model, a, b)
    client = triton_grpc.InferenceServerClient(served.grpc)
    answer = client.infer(name, _triton_inputs(triton_grpc, a, b))
    close(answer.as_numpy("sum"), want["sum"])
    close(answer.as_numpy("prob"), want["prob"])
    other = client.infer(name, _triton_inputs(triton_grpc, a, b), parameters={"signature_name": "probabilities"},
                         outputs=[triton_grpc.InferRequestedOutput("prob")])
    close(other.as_numpy("prob"), want["prob"])
    with pytest.raises(Exception) as refused:
        client.infer(name, _triton_inputs(triton_grpc, a, b)[:1])
    assert "Missing but required: {b}" in str(refused.value)


def _post(served, body, name="pair"):
    return requests.post(f"{served.url}/v1/models/{name}:predict", json=body, timeout=30)


@pytest.mark.parametrize("name", ["pair", "pair_tf"])
def test_bad_inputs_are_tf_servings_400s(served, name):
    a, b = examples(2)
    missing = _post(served, {"inputs": {"a": a.tolist()}}, name)
    assert missing.status_code == 400 and missing.json()["error"] == "Missing named input: b in 'inputs' object."
    unknown = _post(served, {"instances": [{"a": a[0].tolist(), "c": b[0].tolist()}]}, name)
    assert unknown.status_code == 400 and "does not have named input: c" in unknown.json()["error"]
    sizes = _post(served, {"inputs": {"a": a.tolist(), "b": b[:1].tolist()}}, name)
    assert sizes.status_code == 400 and "different batch sizes (a: 2, b: 1)" in sizes.json()["error"]
    shape = _post(served, {"inputs": {"a": b.tolist(), "b": b.tolist()}}, name)
    assert shape.status_code == 400
    assert shape.json()["error"] == "Input tensor alias: a has shape [2,2] but the signature's shape is [-1,3]"
    dtype = _post(served, {"inputs": {"a": [["x", "y", "z"]], "b": b[:1].tolist()}}, name)
    assert dtype.status_code == 400 and "is not of expected type: float" in dtype.json()["error"]
    signature = _post(served, {"signature_name": "nope", "inputs": {"a": a.tolist(), "b": b.tolist()}}, name)
    assert signature.status_code == 400
    assert signature.json()["error"] == 'Serving signature name: "nope" not found in signature def'
    init = _post(served, {"signature_name": "__saved_model_init_op", "inputs": {"a": a.tolist()}}, name)
    assert init.status_code == 400  # listed by /metadata, but not a function


def test_what_the_graph_refuses_when_it_runs_is_the_callers_400_not_a_500(served):
    fine = _post(served, {"inputs": {"x": [[1.0, 2.0]]}}, "guarded")
    assert fine.status_code == 200 and fine.json()["outputs"] == [[2.0, 4.0]]
    refused = _post(served, {"inputs": {"x": [[-1.0, 2.0]]}}, "guarded")
    assert refused.status_code == 400, refused.text
    assert "the model could not run on these inputs" in refused.json()["error"]
    assert "x must be >= 0" in refused.json()["error"]
    with grpc.insecure_channel(served.grpc) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "guarded"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([-3.0], np.float32)))
        with pytest.raises(grpc.RpcError) as failed:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    oip = requests.post(f"{served.url}/v2/models/guarded/infer", timeout=30, json={
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [-1.0]}]})
    assert oip.status_code == 400 and "x must be >= 0" in oip.json()["error"]


def test_bad_grpc_inputs_are_invalid_argument(served):
    a, b = examples(2)
    with grpc.insecure_channel(served.grpc) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        cases = {
            "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
            "Missing but required: {b}.": _predict_request("pair", a, b),
            "input tensor alias not found in signature: c. Inputs expected to be in the set {a,b}.":
                _predict_request("pair", a, b),
            "Expects arg[1] to be float but double is provided": _predict_request("pair", a, b.astype(np.float64)),
            "Inputs have different batch sizes (a: 2, b: 1); send one size for all": _predict_request("pair", a, b[:1]),
            "output tensor alias not found in signature: nope Outputs expected to be in the set {prob,sum}.":
                _predict_request("pair", a, b, output_filter=["nope"]),
            "duplicate output tensor alias: sum": _predict_request("pair", a, b, output_filter=["sum", "sum"]),
        }
        requests_ = list(cases.values())
        del requests_[0].inputs["b"]
        requests_[1].inputs["c"].CopyFrom(requests_[1].inputs.pop("b"))
        for message, request in cases.items():
            with pytest.raises(grpc.RpcError) as refused:
                stub.Predict(request, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
            assert refused.value.details() == message


def test_oip_json_infer_with_requests(saved, served):
    """The protocol's plain JSON (no binary extension): each input by name, each output's data flat."""
    a, b = examples(2)
    want = expected(saved[0], a, b)
    body = {"id": "7", "parameters": {"signature_name": "serving_default"}, "outputs": [{"name": "prob"}],
            "inputs": [{"name": "b", "datatype": "FP32", "shape": [2, 2], "data": b.tolist()},
                       {"name": "a", "datatype": "FP32", "shape": [2, 3], "data": a.ravel().tolist()}]}
    answer = requests.post(f"{served.url}/v2/models/pair/versions/1/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["id"] == "7" and document["model_version"] == "1"
    (prob,) = document["outputs"]
    assert prob["name"] == "prob" and prob["datatype"] == "FP32" and prob["shape"] == [2, 3]
    close(np.reshape(prob["data"], prob["shape"]), want["prob"])


def test_oip_bad_inputs_are_the_protocols_errors(served):
    a, b = examples(2)
    body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [2, 3], "data": a.ravel().tolist()},
                       {"name": "b", "datatype": "FP64", "shape": [2, 2], "data": b.ravel().tolist()}]}
    answer = requests.post(f"{served.url}/v2/models/pair/infer", json=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"] == "Expects arg[1] to be float but double is provided"
    body["inputs"][1]["datatype"] = "FP32"
    body["parameters"] = {"signature_name": "nope"}
    answer = requests.post(f"{served.url}/v2/models/pair/infer", json=body, timeout=30)
    assert answer.status_code == 400 and "no signature 'nope'" in answer.json()["error"]


def test_classify_leaves_it_out_and_refuses_it_by_name(served):
    image = split_image(size=(64, 32))
    named = requests.post(f"{served.url}/v1/classify", timeout=30, data={"x": 10, "y": 16, "models": "pair"},
                          files={"image": ("split.png", image, "image/png")})
    assert named.status_code == 400, named.text
    assert named.json()["code"] == "bad_request" and "named tensors (a, b)" in named.json()["error"]
    alone = requests.post(f"{served.url}/v1/classify", timeout=30, data={"x": 10, "y": 16},
                          files={"image": ("split.png", image, "image/png")})
    assert alone.status_code == 400, alone.text  # no model here takes a crop
    assert "every model here takes named tensors" in alone.json()["error"]


@needs_chromium
def test_the_page_and_its_config_offer_only_the_models_classify_can_run(saved, browser, tmp_path):
    own_models, own_labels = graphs.write_repository(tmp_path, names=("tint",))
    shutil.copytree(saved[1] / "pair" / "1", own_models / "pair" / "1")
    server = start_server(tmp_path, own_models, own_labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0"})
    try:
        assert set(requests.get(f"{server.url}/v1/config", timeout=30).json()["models"]) == {"tint"}
        page = open_page(browser, server)
        page.wait_for_selector("#models li.state-AVAILABLE")
        chips = page.locator("#models li").all_inner_texts()
        assert any(chip.startswith("pair v1") and "named tensors" in chip for chip in chips), chips
        assert [box.get_attribute("value") for box in page.locator("#model-boxes input").all()] == ["tint"]
        page.close()
    finally:
        stop_server(server)


def test_metadata_is_unchanged_the_real_signature_defs(served):
    document = requests.get(f"{served.url}/v1/models/pair/metadata", timeout=30).json()
    signatures = document["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "probabilities", "__saved_model_init_op"}
    assert set(signatures["serving_default"]["inputs"]) == {"a", "b"}
    assert set(signatures["probabilities"]["outputs"]) == {"prob"}


def test_api_workers_checked_named_tensors_without_tensorflow(served):
    """After every call above, the API workers (which read the signatures and checked the inputs) hold
    neither TensorFlow nor ONNX Runtime: the named tensors crossed the hop to the model runner."""
    maps = api_worker_maps(served)
    assert len(maps) == 2
    for loaded in maps.values():
        assert "tensorflow" not in loaded and "onnxruntime" not in loaded


def test_each_signature_is_converted_once_and_cached_by_content(saved, tmp_path):
    """A second load with the cache warm converts nothing and never restores the SavedModel in
    TensorFlow (the check inputs' reference answers are cached too); it answers what Keras does."""
    from service.serving import loader
    from service.serving.backends import onnx_conversion, saved_model
    from service.serving.tensor_call import TensorCall

    model, models, labels = saved
    spec = repository.read_spec("pair", 1, models / "pair" / "1", labels)
    options = loader.LoadOptions(onnx_cache=tmp_path / "cache")
    before = onnx_conversion.conversions
    first = loader.load_servable(spec, options)
    assert first.backend == "onnxruntime" and onnx_conversion.conversions == before + 2  # two signatures
    restore = saved_model.restore
    saved_model.restore = lambda spec: pytest.fail("restored TensorFlow with a warm cache")
    try:
        second = loader.load_servable(spec, options)
    finally:
        saved_model.restore = restore
    assert onnx_conversion.conversions == before + 2 and "from the cache" in second.reason
    a, b = examples(4)
    answer = second.run_tensors(TensorCall("serving_default", {"a": a, "b": b}))
    close(answer["sum"], expected(model, a, b)["sum"])
    assert set(second.run_tensors(TensorCall("serving_default", {"a": a, "b": b}, ("prob",)))) == {"prob"}
    first.close(), second.close()


def test_auto_falls_back_to_tensorflow_when_verification_fails(saved):
    """No tolerance can be met (a negative one): auto serves it on TensorFlow and says why;
    backend = "onnxruntime" fails the version with that reason."""
    from service.serving import loader

    model, models, labels = saved
    spec = repository.read_spec("pair", 1, models / "pair" / "1", labels)
    servable = loader.load_servable(spec, loader.LoadOptions(onnx_tolerance=-1.0))
    assert servable.backend == "tensorflow" and "auto fell back to TensorFlow" in servable.reason
    assert "differ from TensorFlow's" in servable.reason
    servable.close()
    with pytest.raises(repository.ModelConfigError, match="backend = onnxruntime"):
        loader.load_servable(spec, loader.LoadOptions(backend="onnxruntime", onnx_tolerance=-1.0))


def test_calls_waiting_together_share_a_run_and_each_gets_its_own_answer(saved):
    """Named-tensor calls queued together on one runtime: those of one signature, outputs and shapes
    are concatenated along the batch axis and cut back; the others run alone. Each answer is Keras's."""
    import threading
    import time as clock

    from service.serving import tensor_call
    from service.serving.runtime import Runtime
    from service.serving.tensor_call import TensorCall

    model, models, labels = saved
    spec = repository.read_spec("pair_tf", 1, models / "pair_tf" / "1", labels)
    runtime = Runtime(max_batch=64, queue_size=64, intra_op_threads=1, inter_op_threads=1)
    runtime.start()
    try:
        runtime.load(spec).result(timeout=120)
        rng = np.random.default_rng(2)
        def inputs(n: int) -> dict[str, np.ndarray]:
            return {"a": rng.random((n, 3), np.float32), "b": rng.random((n, 2), np.float32)}

        calls = [TensorCall("serving_default", inputs(n), outputs, batched=True)
                 for n, outputs in [(1, ()), (3, ()), (2, ("sum",)), (2, ()), (4, ("sum",))]]
        calls.append(TensorCall("probabilities", inputs(2), batched=True))
        assert sorted(map(sorted, tensor_call.groups(calls))) == [[0, 1, 3], [2, 4], [5]]
        # The inference thread held by control work while every call is queued: they make one batch.
        held, batches = threading.Event(), []
        runtime.on_batch = lambda crops, run_ms: batches.append(crops)
        runtime._call_on_thread(lambda: held.wait(30))
        jobs = [runtime.submit({spec.key: call}, clock.monotonic() + 30) for call in calls]
        held.set()
        for call, job in zip(calls, jobs):
            answer = job.future.result(timeout=30).outputs[spec.key]
            want = expected(model, call.inputs["a"], call.inputs["b"])
            names = call.outputs or (("prob",) if call.signature == "probabilities" else ("prob", "sum"))
            assert sorted(answer) == sorted(names)
            for name in names:
                close(answer[name], want[name])
        assert batches == [sum(map(len, calls))]
    finally:
        runtime.stop()


def test_rows_and_named_tensors_of_one_version_in_one_batch(tmp_path):
    """A one-input SavedModel's rows (its served signature, the batched path) and a call naming its other
    signature ("serve", which model.export writes) queued together: each is answered its own."""
    import threading
    import time as clock

    from service.serving.runtime import Runtime
    from service.serving.tensor_call import TensorCall

    tf.keras.utils.set_random_seed(3)
    single = tf.keras.Sequential([tf.keras.Input((3,), name="x"), tf.keras.layers.Dense(2, activation="softmax")])
    single.export(str(tmp_path / "models" / "single" / "1"))
    (tmp_path / "labels").mkdir()
    spec = repository.read_spec("single", 1, tmp_path / "models" / "single" / "1", tmp_path / "labels")
    assert not spec.tensors_only and spec.input.kind == "flat"
    runtime = Runtime(max_batch=64, queue_size=64, intra_op_threads=1, inter_op_threads=1)
    runtime.start()
    try:
        runtime.load(spec).result(timeout=120)
        rows, named = examples(3)[0], examples(2)[0]
        (alias,) = [t.key for t in dict(spec.signatures)["serve"].outputs]
        held, batches = threading.Event(), []
        runtime.on_batch = lambda crops, run_ms: batches.append(crops)
        runtime._call_on_thread(lambda: held.wait(30))
        by_rows = runtime.submit({spec.key: rows}, clock.monotonic() + 30)
        by_name = runtime.submit({spec.key: TensorCall("serve", {"x": named}, batched=True)}, clock.monotonic() + 30)
        held.set()
        close(by_rows.future.result(timeout=30).outputs[spec.key], single(rows).numpy())
        close(by_name.future.result(timeout=30).outputs[spec.key][alias], single(named).numpy())
        assert batches == [5]
    finally:
        runtime.stop()
