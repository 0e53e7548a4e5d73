"""A SavedModel dropped into models/NAME/VERSION/ serves as it is (docs/models.md, "Serving a
SavedModel"): a small Keras model, saved by `model.export` and by `tf.saved_model.save`, in a temporary
repository of a real server on free ports; its answers over REST :predict, gRPC Predict
(tensorflow-serving-api's stubs) and the Open Inference Protocol (tritonclient HTTP) equal Keras's own,
its /metadata is its real signature_def, and a model.toml beside one makes /v1/classify work on it."""

from __future__ import annotations

import base64
import shutil
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
import tritonclient.http as triton_http
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from fixtures import RED, api_worker_maps, split_image
from service.serving import repository, savedmodel

CLASSES = 4


def keras_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(7)
    inputs = tf.keras.Input((8, 8, 3), name="pixels")
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(CLASSES, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def batch(n: int = 3) -> np.ndarray:
    return np.random.default_rng(3).uniform(0, 1, (n, 8, 8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The Keras model, its two SavedModels and a repository serving them: `exported` (model.export,
    no model.toml), `plain` (tf.saved_model.save, no model.toml), both served on ONNX Runtime after
    tf2onnx's conversion is verified (backend auto), and `regions` (model.export with a model.toml
    adding the crop, scaling and labels for /v1/classify, and backend = "tensorflow")."""
    root = tmp_path_factory.mktemp("savedmodel")
    model = keras_model()
    model.export(str(root / "exported"))
    tf.saved_model.save(model, str(root / "plain"))
    models, labels = root / "repo" / "models", root / "repo" / "labels"
    labels.mkdir(parents=True)
    shutil.copytree(root / "exported", models / "exported" / "1")
    shutil.copytree(root / "plain", models / "plain" / "1")
    shutil.copytree(root / "exported", models / "regions" / "1")
    (models / "regions" / "1" / "model.toml").write_text(
        'labels = "quarters"\nbackend = "tensorflow"\n[input]\nscale = 0.00392156862745098\n[crop]\nbox = [16, 16]\n')
    (labels / "quarters.txt").write_text("north\neast\nsouth\nwest\n")
    return model, models, labels


def grpc_predict(served, x: np.ndarray, signature_name: str):
    """tensorflow-serving-api's Predict of the `exported` model's `pixels` input, by that signature."""
    with grpc.insecure_channel(served.grpc) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "exported"
        request.model_spec.signature_name = signature_name
        request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(x))
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def test_the_repository_reads_the_signature_without_tensorflow(saved):
    _, models, labels = saved
    signatures = savedmodel.read_signatures(models / "exported" / "1")
    default = signatures["serving_default"]
    assert [(t.key, t.dtype, t.shape) for t in default.inputs] == [("pixels", "float32", (-1, 8, 8, 3))]
    assert [(t.dtype, t.shape) for t in default.outputs] == [("float32", (-1, CLASSES))]
    discovery = repository.scan(models, labels)
    assert discovery.problems == {}
    spec = discovery.versions["plain"][1]
    assert spec.is_saved_model and not spec.configured and spec.signature_name == "serving_default"
    assert (spec.input.kind, spec.input.height, spec.input.width, spec.input.channels) == ("image", 8, 8, 3)
    assert spec.labels == ("0", "1", "2", "3")
    assert discovery.versions["regions"][1].labels == ("north", "east", "south", "west")


@pytest.mark.parametrize("name", ["exported", "plain"])
def test_rest_predict_answers_what_keras_does(saved, served, name):
    model, _, _ = saved
    x = batch()
    expected = model(x).numpy()
    answer = requests.post(f"{served.url}/v1/models/{name}:predict", json={"instances": x.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(np.array(answer.json()["predictions"], np.float32), expected, rtol=1e-5, atol=1e-6)
    # the columnar form, with the signature named, its input by its alias (model.export: the Keras
    # input's name; tf.saved_model.save: the call's argument, "inputs")
    feed = savedmodel.read_signatures(saved[1] / name / "1")["serving_default"].inputs[0].key
    assert feed == ("pixels" if name == "exported" else "inputs")
    answer = requests.post(f"{served.url}/v1/models/{name}/versions/1:predict", timeout=30,
                           json={"signature_name": "serving_default", "inputs": {feed: x.tolist()}})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(np.array(answer.json()["outputs"], np.float32), expected, rtol=1e-5, atol=1e-6)
    wrong = requests.post(f"{served.url}/v1/models/{name}:predict", timeout=30,
                          json={"signature_name": "nope", "instances": x.tolist()})
    assert wrong.status_code == 400 and "nope" in wrong.json()["error"]


def test_signature_name_chooses_any_of_its_signatures(saved, served):
    """model.export writes "serve" beside "serving_default": named, it answers over REST, gRPC and the
    OIP as its named tensors (docs/api.md), on ONNX Runtime too (each signature converted and verified)."""
    model, models, _ = saved
    x = batch(2)
    expected = model(x).numpy()
    (alias,) = [t.key for t in savedmodel.read_signatures(models / "exported" / "1")["serve"].outputs]
    answer = requests.post(f"{served.url}/v1/models/exported:predict", timeout=30,
                           json={"signature_name": "serve", "inputs": {"pixels": x.tolist()}})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(np.array(answer.json()["outputs"], np.float32), expected, rtol=1e-5, atol=1e-6)
    response = grpc_predict(served, x, "serve")
    assert response.model_spec.signature_name == "serve"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[alias]), expected, rtol=1e-5, atol=1e-6)
    http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    tensor = triton_http.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    answer = http.infer("exported", [tensor], parameters={"signature_name": "serve"})
    np.testing.assert_allclose(answer.as_numpy(alias), expected, rtol=1e-5, atol=1e-6)


def test_metadata_is_the_real_signature_def(saved, served):
    document = requests.get(f"{served.url}/v1/models/exported/metadata", timeout=30).json()
    assert document["model_spec"] == {"name": "exported", "signature_name": "", "version": "1"}
    signatures = document["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    pixels = default["inputs"]["pixels"]
    assert pixels["dtype"] == "DT_FLOAT"
    assert [int(d["size"]) for d in pixels["tensor_shape"]["dim"]] == [-1, 8, 8, 3]
    assert pixels["name"].startswith("serving_default_pixels")
    ((alias, output),) = default["outputs"].items()
    assert output["dtype"] == "DT_FLOAT" and [int(d["size"]) for d in output["tensor_shape"]["dim"]] == [-1, CLASSES]
    init = signatures["__saved_model_init_op"]  # as TF Serving shows a Keras export's
    assert init["inputs"] == {} and init["method_name"] == ""
    assert init["outputs"]["__saved_model_init_op"]["dtype"] == "DT_INVALID"
    assert init["outputs"]["__saved_model_init_op"]["tensor_shape"]["unknown_rank"] is True
    on_disk = savedmodel.read_signatures(saved[1] / "exported" / "1")
    assert set(signatures) == set(on_disk) and alias == on_disk["serving_default"].outputs[0].key


def test_grpc_predict_and_oip_answer_what_keras_does(saved, served):
    model, models, _ = saved
    x = batch(2)
    expected = model(x).numpy()
    alias = savedmodel.read_signatures(models / "exported" / "1")["serving_default"].outputs[0].key
    response = grpc_predict(served, x, "serving_default")
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[alias]), expected, rtol=1e-5, atol=1e-6)

    http = triton_http.InferenceServerClient(served.url.removeprefix("http://"))
    metadata = http.get_model_metadata("plain")
    assert metadata["inputs"][0]["name"] == "inputs" and metadata["inputs"][0]["shape"] == [-1, 8, 8, 3]
    plain_alias = metadata["outputs"][0]["name"]
    tensor = triton_http.InferInput("inputs", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    answer = http.infer("plain", [tensor], outputs=[triton_http.InferRequestedOutput(plain_alias)])
    np.testing.assert_allclose(answer.as_numpy(plain_alias), expected, rtol=1e-5, atol=1e-6)


def test_a_model_toml_beside_it_makes_region_classification_work(saved, served):
    model, _, _ = saved
    image = split_image(size=(64, 32))
    answer = requests.post(f"{served.url}/v1/classify", files={"image": ("split.png", image, "image/png")},
                           data={"x": 10, "y": 16, "models": "regions"}, timeout=30)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    labels = document["predictions"][0]["results"]["regions"]
    assert {entry["label"] for entry in labels} <= {"north", "east", "south", "west"}
    assert document["models"]["regions"]["backend"] == "tensorflow"
    # the crop (16x16 around the point, in the red half) resized to 8x8, scaled to 0..1: Keras agrees
    red = np.broadcast_to(np.array(RED, np.float32) / 255, (1, 8, 8, 3))
    top = model(red).numpy()[0].argmax()
    assert labels[0]["label"] == ("north", "east", "south", "west")[top]
    assert abs(labels[0]["score"] - float(model(red).numpy()[0].max())) < 1e-4
    status = requests.get(f"{served.url}/v1/models", timeout=30).json()
    assert "SavedModel" in str(status)


def test_each_version_says_which_backend_runs_it_and_why(served):
    status = {entry["name"]: entry for entry in requests.get(f"{served.url}/v1/models", timeout=30).json()["models"]}
    for name in ("exported", "plain"):
        (version,) = status[name]["versions"]
        assert version["backend"] == "onnxruntime", version
        assert "SavedModel" in version["backend_reason"] and "verified against TensorFlow" in version["backend_reason"]
    (version,) = status["regions"]["versions"]
    assert version["backend"] == "tensorflow" and "SavedModel" in version["backend_reason"]


def test_classify_with_no_models_named_leaves_out_savedmodels_without_a_model_toml(served):
    answer = requests.post(f"{served.url}/v1/classify", timeout=30,
                           files={"image": ("split.png", split_image(size=(64, 32)), "image/png")},
                           data={"x": 10, "y": 16})
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["predictions"][0]["results"]) == {"regions"}
    named = requests.post(f"{served.url}/v1/classify", timeout=30,
                          files={"image": ("split.png", split_image(size=(64, 32)), "image/png")},
                          data={"x": 10, "y": 16, "models": "plain"})
    assert named.status_code == 200, named.text  # named, it runs as it is: labels are class numbers
    assert {entry["label"] for entry in named.json()["predictions"][0]["results"]["plain"]} == {"0", "1", "2", "3"}


def test_grpc_metadata_is_the_signature_def(served):
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    with grpc.insecure_channel(served.grpc) as channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "exported"
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert isinstance(default, meta_graph_pb2.SignatureDef)
    assert [d.size for d in default.inputs["pixels"].tensor_shape.dim] == [-1, 8, 8, 3]


def test_its_web_copy_is_the_frozen_signature_converted_and_verified(saved, served):
    import onnxruntime as ort

    model = saved[0]
    document = requests.get(f"{served.url}/v1/models/regions/versions/1/web/model.json", timeout=120)
    assert document.status_code == 200, document.text
    web = document.json()
    assert web["labels"] == ["north", "east", "south", "west"] and web["input"]["height"] == 8
    onnx_model = requests.get(served.url + web["files"]["float32"]["url"], timeout=30).content
    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    x = batch(2)
    (scores,) = session.run([web["output"]], {web["input"]["name"]: x})
    np.testing.assert_allclose(scores, model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_classify_route_and_api_workers_free_of_tensorflow(served):
    """TF Serving's :classify on the model.toml'd SavedModel; and after all the above, the API workers
    (which answered the REST routes and read the signatures) hold no TensorFlow."""
    image = base64.b64encode(split_image(size=(64, 32))).decode()
    answer = requests.post(f"{served.url}/v1/models/regions:classify", timeout=30,
                           json={"examples": [{"image": {"b64": image}, "x": 10, "y": 16}]})
    assert answer.status_code == 200, answer.text
    (classes,) = answer.json()["results"]
    assert sorted(label for label, _ in classes) == ["east", "north", "south", "west"]
    maps = api_worker_maps(served)
    assert len(maps) == 2
    for loaded in maps.values():
        assert "tensorflow" not in loaded and "onnxruntime" not in loaded


def test_a_new_version_published_by_rename_takes_over(saved, served):
    """Hot reload as for any model: version 2 (a different model) renamed into place serves once loaded."""
    _, models, _ = saved
    tf.keras.utils.set_random_seed(11)
    other = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(CLASSES, activation="softmax")])
    incoming = models / "plain" / ".incoming-2"
    tf.saved_model.save(other, str(incoming))
    incoming.rename(models / "plain" / "2")
    x = batch(2)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = requests.get(f"{served.url}/v1/models/plain/versions/2", timeout=30)
        if status.status_code == 200 and status.json()["model_version_status"][0]["state"] == "AVAILABLE":
            break
        time.sleep(0.5)
    answer = requests.post(f"{served.url}/v1/models/plain:predict", json={"instances": x.tolist()}, timeout=30)
    np.testing.assert_allclose(np.array(answer.json()["predictions"], np.float32), other(x).numpy(),
                               rtol=1e-5, atol=1e-6)
    one = requests.post(f"{served.url}/v1/models/plain/versions/2:predict", json={"instances": x.tolist()}, timeout=30)
    assert one.status_code == 200


def test_the_conversion_is_cached_by_the_savedmodel_files(saved, tmp_path):
    """Its frozen graph's bytes differ from freeze to freeze: the ONNX cache is keyed by the SavedModel's
    files, so a second load converts nothing (and, with TensorFlow's answers cached, freezes nothing)."""
    from service.serving import loader
    from service.serving.backends import onnx_conversion, saved_model

    model, models, labels = saved
    spec = repository.read_spec("exported", 1, models / "exported" / "1", labels)
    options = loader.LoadOptions(onnx_cache=tmp_path / "cache")
    before = onnx_conversion.conversions
    first = loader.load_servable(spec, options)
    # the served signature frozen, and model.export's other signature ("serve") converted whole
    assert first.backend == "onnxruntime" and onnx_conversion.conversions == before + 2
    frozen = saved_model.frozen_graph
    saved_model.frozen_graph = lambda spec: pytest.fail("froze again with a warm cache")
    try:
        second = loader.load_servable(spec, options)
    finally:
        saved_model.frozen_graph = frozen
    assert onnx_conversion.conversions == before + 2 and "from the cache" in second.reason
    x = batch(2)
    np.testing.assert_allclose(second.run(x), model(x).numpy(), rtol=1e-5, atol=1e-6)
    first.close(), second.close()
