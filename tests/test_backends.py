"""Backends: frozen graphs converted to ONNX and verified against TensorFlow, ONNX models served as they
are, and what happens when a conversion cannot be trusted or a model cannot be read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tensorflow as tf

import graphs
from fixtures import RED, split_image
from inprocess import InProcessServer
from service.serving import loader, repository
from service.serving.backends import onnx_conversion
from service.serving.runtime import Runtime
from service.serving.servable import LoadOptions

tf1 = tf.compat.v1
REPO = Path(__file__).resolve().parents[1]

# A `tint` whose dropout was left switched on when it was frozen (a real mistake): tf2onnx converts it,
# but its random draws are not TensorFlow's, so verification must refuse it.
NOISY_CONFIG = graphs.MODEL_CONFIGS["tint"]
# A `bright` computed through Lgamma, an op tf2onnx has no conversion for.
LGAMMA_CONFIG = graphs.MODEL_CONFIGS["bright"]
# An ONNX model as torch.onnx.export writes one: channels first, tensors named without ":0".
EXPORTED_CONFIG = """
[input]
tensor = "pixels"
kind = "image"
layout = "nchw"
height = 8
width = 8
channels = 3
scale = 0.00392156862745098
[output]
tensor = "probs"
[crop]
fraction = 0.1
min_px = 8
"""


def noisy_graph() -> bytes:
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        mean = tf.nn.dropout(tf.reduce_mean(images, axis=[1, 2]), rate=0.5)
        tf.nn.softmax(mean * 12.0, name="probs")
    return graph.as_graph_def().SerializeToString()


def lgamma_graph() -> bytes:
    graph = tf.Graph()
    with graph.as_default():
        flat = tf1.placeholder(tf.float32, [None, 16], name="x")
        value = tf.math.lgamma(tf.reduce_mean(flat, axis=1, keepdims=True) + 2.0)
        tf.concat([-value * 8.0, value * 8.0], axis=1, name="logits")
    return graph.as_graph_def().SerializeToString()


def exported_onnx(input_name: str = "pixels", batch: str | int = "batch") -> bytes:
    """softmax(12 × the crop's mean red, green, blue), [batch, 3, 8, 8] in: what `tint` computes."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", [input_name], ["mean"], axes=[2, 3], keepdims=0),
         helper.make_node("Mul", ["mean", "sharpness"], ["scaled"]),
         helper.make_node("Softmax", ["scaled"], ["probs"], axis=1)],
        "exported",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor("sharpness", TensorProto.FLOAT, [], [12.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def add_version(models: Path, labels: Path, name: str, files: dict[str, bytes | str], labels_text: str) -> None:
    version = models / name / "1"
    version.mkdir(parents=True)
    for filename, content in files.items():
        (version / filename).write_bytes(content if isinstance(content, bytes) else content.encode())
    (labels / f"{name}.txt").write_text(labels_text)


def specs_of(models: Path, labels: Path) -> dict[str, repository.ModelSpec]:
    found = repository.scan(models, labels)
    return {spec.name: spec for spec in found.specs}


def started(backend: str, cache: Path | None) -> Runtime:
    runtime = Runtime(max_batch=32, queue_size=64, intra_op_threads=2, inter_op_threads=1, backend=backend,
                      onnx_cache=cache)
    runtime.start()
    return runtime


def crops_of(spec, colours) -> np.ndarray:
    """Prepared feeds for flat-coloured crops, then noise: what a request would hand the runtime."""
    from service.classify.preprocess import prepare

    i = spec.input
    pixels = np.stack([np.full((i.height, i.width, 3), colour, np.uint8) for colour in colours]
                      + [np.random.default_rng(7).integers(0, 256, (i.height, i.width, 3), dtype=np.uint8)])
    if i.channels == 1:
        pixels = pixels[..., :1]
    return prepare(i, pixels)


# ---- in-process: the runtime with each backend ----

def test_both_backends_give_the_same_answers_on_the_image_and_flat_graphs(repository, onnx_cache):
    specs = specs_of(*repository)
    tensorflow_runtime, onnx_runtime = started("tensorflow", None), started("auto", onnx_cache)
    try:
        for name in ("tint", "bright"):
            on_tf = tensorflow_runtime.load(specs[name]).result(120)
            on_onnx = onnx_runtime.load(specs[name]).result(120)
            assert (on_tf.backend, on_onnx.backend) == ("tensorflow", "onnxruntime")
            assert "verified against TensorFlow" in on_onnx.reason and "tolerance 0.0001" in on_onnx.reason
            feeds = {specs[name].key: crops_of(specs[name], [RED, (30, 200, 30), (30, 30, 220), (10, 10, 10)])}
            deadline = time.monotonic() + 30
            tf_rows = tensorflow_runtime.submit(feeds, deadline).future.result(30).outputs[specs[name].key]
            onnx_rows = onnx_runtime.submit(feeds, deadline).future.result(30).outputs[specs[name].key]
            assert onnx_rows.shape == tf_rows.shape == (5, len(specs[name].labels))
            assert np.abs(onnx_rows - tf_rows).max() <= 1e-5
            assert list(onnx_rows.argmax(axis=1)) == list(tf_rows.argmax(axis=1))
    finally:
        tensorflow_runtime.stop()
        onnx_runtime.stop()


def test_an_encoded_graph_stays_on_tensorflow_and_says_why(repository, onnx_cache):
    runtime = started("auto", onnx_cache)
    try:
        loaded = runtime.load(specs_of(*repository)["jpeg"]).result(120)
    finally:
        runtime.stop()
    assert loaded.backend == "tensorflow"
    assert loaded.reason == "an encoded input (JPEG bytes) runs on TensorFlow only"


def test_onnx_servables_run_only_on_the_inference_thread(repository, onnx_cache, monkeypatch):
    specs = specs_of(*repository)
    runtime = started("onnxruntime", onnx_cache)
    runtime.load(specs["tint"]).result(120)  # its verification runs on the loader thread, before it is offered
    seen = []
    original = onnxruntime.InferenceSession.run

    def spy(self, *args, **kwargs):
        seen.append(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", spy)
    feeds = {"tint@1": crops_of(specs["tint"], [RED])}
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: runtime.submit(feeds, time.monotonic() + 10).future.result(10), range(40)))
    runtime.stop()
    assert all(int(np.argmax(outcome.outputs["tint@1"][0])) == 0 for outcome in outcomes)  # red
    assert seen and set(seen) == {runtime.thread_ident}


def test_a_damaged_cache_entry_is_converted_again(repository, tmp_path):
    spec = specs_of(*repository)["tint"]
    options = loader.LoadOptions(onnx_cache=tmp_path)
    loader.load_servable(spec, options).close()
    (cached,) = tmp_path.glob("*.onnx")
    cached.write_bytes(b"half a file")
    before = onnx_conversion.conversions
    servable = loader.load_servable(spec, options)
    assert servable.backend == "onnxruntime" and "from the cache" not in servable.reason
    assert onnx_conversion.conversions == before + 1
    assert cached.read_bytes() != b"half a file"
    servable.close()


def exported_version(tmp_path: Path, **model) -> repository.ModelSpec:
    models, labels = tmp_path / "models", tmp_path / "labels"
    labels.mkdir()
    add_version(models, labels, "exported", {"model.onnx": exported_onnx(**model), "model.toml": EXPORTED_CONFIG},
                graphs.LABELS["tint"])
    return specs_of(models, labels)["exported"]


def test_an_onnx_model_exported_with_a_batch_of_one_runs_one_crop_at_a_time(tmp_path):
    spec = exported_version(tmp_path, batch=1)
    servable = loader.load_servable(spec, loader.LoadOptions())
    assert not servable.batched
    assert list(servable.run(crops_of(spec, [RED, (30, 200, 30), (30, 30, 220)])).argmax(axis=1))[:3] == [0, 1, 2]


def test_an_onnx_model_with_another_fixed_batch_is_refused(tmp_path):
    spec = exported_version(tmp_path, batch=4)
    with pytest.raises(repository.ModelConfigError, match="takes exactly 4 rows; export it with a dynamic batch axis"):
        loader.load_servable(spec, loader.LoadOptions())


# ---- model.toml ----

@pytest.mark.parametrize("config, files, message", [
    ('backend = "tpu"\n', ["frozen_graph.pb"], "backend must be one of auto, tensorflow, onnxruntime"),
    ('backend = "tensorflow"\n', ["model.onnx"], "model.onnx is an ONNX model: it runs on onnxruntime"),
    ("", [], "no frozen_graph.pb or model.onnx"),
])
def test_model_toml_backend_and_graph_files_are_checked(tmp_path, config, files, message):
    version = tmp_path / "models" / "tint" / "1"
    version.mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "tint.txt").write_text(graphs.LABELS["tint"])
    (version / "model.toml").write_text(config + graphs.MODEL_CONFIGS["tint"].replace('graph = "frozen_graph.pb"', ""))
    for name in files:
        (version / name).write_bytes(b"\0")
    found = repository.scan(tmp_path / "models", tmp_path / "labels")
    assert message in found.problems["tint@1"]


def test_an_encoded_graph_cannot_ask_for_onnxruntime(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("jpeg",))
    config = models / "jpeg" / "1" / "model.toml"
    config.write_text('backend = "onnxruntime"\n' + config.read_text())
    found = repository.scan(models, labels)
    assert "an encoded input (JPEG bytes in a string tensor) runs on tensorflow only" in found.problems["jpeg@1"]


# ---- a server with every case at once ----

@pytest.fixture(scope="module")
def mixed(tmp_path_factory, onnx_cache):
    root = tmp_path_factory.mktemp("backends")
    models, labels = graphs.write_repository(root, names=("tint", "bright", "jpeg"))
    add_version(models, labels, "noisy", {"frozen_graph.pb": noisy_graph(), "model.toml": NOISY_CONFIG},
                graphs.LABELS["tint"])
    add_version(models, labels, "lgamma", {"frozen_graph.pb": lgamma_graph(), "model.toml": LGAMMA_CONFIG},
                graphs.LABELS["bright"])
    add_version(models, labels, "strict", {"frozen_graph.pb": lgamma_graph(),
                                           "model.toml": 'backend = "onnxruntime"\n' + LGAMMA_CONFIG},
                graphs.LABELS["bright"])
    add_version(models, labels, "exported", {"model.onnx": exported_onnx(), "model.toml": EXPORTED_CONFIG},
                graphs.LABELS["tint"])
    add_version(models, labels, "corrupt", {"model.onnx": b"\x08\x07 not a protobuf", "model.toml": EXPORTED_CONFIG},
                graphs.LABELS["tint"])
    add_version(models, labels, "misnamed", {"model.onnx": exported_onnx("images"), "model.toml": EXPORTED_CONFIG},
                graphs.LABELS["tint"])
    # Versions that cannot load keep /readyz at 503: wait for every load to finish instead.
    server = InProcessServer(root, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0"}, wait_ready=False).start()
    deadline = time.monotonic() + 120
    while True:
        listing = {model["name"]: model for model in server.get("/v1/models").json()["models"]}
        if len(listing) == 9 and all(m["state"] in ("AVAILABLE", "END") for m in listing.values()):
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.2)
    yield server, listing
    server.stop()


def classify(server, models: str) -> dict:
    response = server.post(f"/v1/classify?x=10&y=50&models={models}", data=split_image(),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    return response.json()


def test_auto_falls_back_to_tensorflow_when_the_converted_graph_disagrees(mixed):
    server, listing = mixed
    noisy = listing["noisy"]
    assert (noisy["state"], noisy["backend"]) == ("AVAILABLE", "tensorflow")
    assert noisy["backend_reason"].startswith("auto fell back to TensorFlow: ONNX Runtime's answers differ from "
                                              "TensorFlow's by ")
    assert "(tolerance 0.0001) on 8 check inputs" in noisy["backend_reason"]
    assert any(json.loads(line).get("event") == "onnx_fallback" and json.loads(line)["servable"] == "noisy@1"
               for line in server.log().splitlines() if line.startswith("{"))
    assert classify(server, "noisy")["models"]["noisy"] == {"version": 1, "backend": "tensorflow"}


def test_auto_falls_back_when_tf2onnx_lacks_an_op_and_onnxruntime_fails_alone(mixed):
    server, listing = mixed
    lgamma = listing["lgamma"]
    assert (lgamma["state"], lgamma["backend"]) == ("AVAILABLE", "tensorflow")
    assert "tf2onnx cannot convert it: no ONNX conversion for the op Lgamma" in lgamma["backend_reason"]
    # Asked for onnxruntime and nothing else, the same graph does not serve, and says why.
    strict = listing["strict"]
    assert strict["state"] == "END" and strict["backend"] is None
    assert strict["error"].startswith("backend = onnxruntime (model.toml), but tf2onnx cannot convert it: "
                                      "no ONNX conversion for the op Lgamma")
    answer = classify(server, "tint,bright,jpeg,lgamma")
    assert answer["models"] == {"tint": {"version": 1, "backend": "onnxruntime"},
                                "bright": {"version": 1, "backend": "onnxruntime"},
                                "jpeg": {"version": 1, "backend": "tensorflow"},
                                "lgamma": {"version": 1, "backend": "tensorflow"}}
    assert answer["errors"] == {}


def test_a_model_onnx_version_serves_as_exported(mixed):
    server, listing = mixed
    exported = listing["exported"]
    assert (exported["state"], exported["backend"], exported["backend_reason"]) == (
        "AVAILABLE", "onnxruntime", "model.onnx, run as exported")
    answer = classify(server, "exported,tint")
    assert answer["predictions"][0]["results"]["exported"][0]["label"] == "red"
    exported_scores = answer["predictions"][0]["results"]["exported"]
    tint_scores = answer["predictions"][0]["results"]["tint"]
    # The same function as tint's graph: the crop fed channels first gives tint's answer.
    assert [entry["label"] for entry in exported_scores] == [entry["label"] for entry in tint_scores]
    assert [entry["score"] for entry in exported_scores] == pytest.approx([entry["score"] for entry in tint_scores],
                                                                         abs=1e-5)
    # TF Serving's metadata shows the channels-first input it is fed.
    metadata = server.get("/v1/models/exported/metadata").json()
    dims = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["input"]
    assert [int(d["size"]) for d in dims["tensor_shape"]["dim"]] == [-1, 3, 8, 8]


def test_a_corrupt_model_onnx_or_a_wrong_input_name_fails_alone_with_a_clear_status(mixed):
    server, listing = mixed
    corrupt, misnamed = listing["corrupt"], listing["misnamed"]
    assert corrupt["state"] == "END" and "model.onnx: ONNX Runtime cannot load it (" in corrupt["error"]
    assert misnamed["state"] == "END"
    # The file is named from the model repository: no absolute server path reaches a client (the log has it).
    assert misnamed["error"].endswith("model.toml: input.tensor 'pixels' is not an input of "
                                      "misnamed/1/model.onnx; its inputs: images tensor(float) [batch, 3, 8, 8]")
    assert misnamed_path(server, listing) in server.log()
    status = server.get("/v1/models/corrupt").json()["model_version_status"][0]
    assert status["state"] == "END" and "ONNX Runtime cannot load it" in status["status"]["error_message"]
    root = str(Path(server.log_path).parent)
    for path in ("/v1/models", "/v1/models/misnamed", "/v1/models/corrupt", "/v1/models/strict"):
        assert root not in server.get(path).text, path
    assert classify(server, "exported")["models"]["exported"]["backend"] == "onnxruntime"


def misnamed_path(server, listing) -> str:
    return str(Path(server.log_path).parent / "models" / "misnamed" / "1" / "model.onnx")


# ---- processes: what is imported, and what a restart converts ----

ENGINE_SCRIPT = textwrap.dedent("""
    import json, sys
    from service.config import load_settings
    from service.engine import Engine
    from service.serving.backends import onnx_conversion

    settings = load_settings(environ={}, overrides={"models": sys.argv[1], "labels": sys.argv[2],
                                                    "onnx_cache": sys.argv[3]})
    with Engine.open(settings=settings) as engine:
        versions = {name: versions[0] for name, versions in engine.manager.snapshot().items()}
        answer = engine.classify_image(open(sys.argv[4], "rb").read(), [[10, 50]])
    print(json.dumps({
        "backends": {name: [v.backend, v.backend_reason] for name, v in versions.items()},
        "top": {name: labels[0].label for name, labels in answer.predictions[0].results.items()},
        "conversions": onnx_conversion.conversions,
        "imported": sorted(m for m in ("tensorflow", "tf2onnx", "onnxruntime") if m in sys.modules),
    }))
""")


def run_engine(tmp_path: Path, models: Path, labels: Path, cache: Path) -> dict:
    image = tmp_path / "split.png"
    image.write_bytes(split_image())
    done = subprocess.run([sys.executable, "-c", ENGINE_SCRIPT, str(models), str(labels), str(cache), str(image)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_repository_of_onnx_models_never_imports_tensorflow(tmp_path):
    models, labels = tmp_path / "models", tmp_path / "labels"
    labels.mkdir()
    add_version(models, labels, "exported", {"model.onnx": exported_onnx(), "model.toml": EXPORTED_CONFIG},
                graphs.LABELS["tint"])
    result = run_engine(tmp_path, models, labels, tmp_path / "cache")
    assert result["backends"] == {"exported": ["onnxruntime", "model.onnx, run as exported"]}
    assert result["top"] == {"exported": "red"}
    assert result["imported"] == ["onnxruntime"]


def test_the_conversion_cache_is_reused_on_restart_without_tensorflow(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint", "bright"))
    cache = tmp_path / "cache"
    first = run_engine(tmp_path, models, labels, cache)
    assert first["conversions"] == 2 and "tensorflow" in first["imported"]
    assert sorted(path.suffix for path in cache.iterdir()) == [".npy", ".npy", ".onnx", ".onnx", ".verified",
                                                                 ".verified"]
    # What `pinpoint predict` asks before loading: neither needs TensorFlow now, unless the tolerance in force
    # is tighter than what the check found.
    specs = repository.scan(models, labels).specs
    assert not any(loader.needs_tensorflow(spec, LoadOptions(onnx_cache=cache)) for spec in specs)
    assert all(loader.needs_tensorflow(spec, LoadOptions(onnx_cache=cache, onnx_tolerance=-1.0)) for spec in specs)
    again = run_engine(tmp_path, models, labels, cache)
    # No conversion, and TensorFlow's answers on the check inputs come from the cache too: not imported.
    assert again["conversions"] == 0 and again["imported"] == ["onnxruntime"]
    assert {name: backend for name, (backend, _) in again["backends"].items()} == {
        "bright": "onnxruntime", "tint": "onnxruntime"}
    assert all("(opset 17, from the cache), verified against TensorFlow on 8 inputs" in reason
               for _, reason in again["backends"].values())
    assert again["top"] == first["top"] == {"tint": "red", "bright": "dark"}


def convolutions_onnx(side: int) -> bytes:
    """Two 3x3 convolutions (3 -> 16 -> 16 channels) on a [batch, 3, side, side] image, averaged into 3
    classes: ~10k weights, and a run whose cost grows with side² (side 8: ~0.05 ms; 256: ~5 ms on two threads)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def weights(name, *shape):
        return helper.make_tensor(name, TensorProto.FLOAT, shape, rng.normal(0, 0.1, shape).astype(np.float32).ravel())

    graph = helper.make_graph(
        [helper.make_node("Conv", ["pixels", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
         helper.make_node("ReduceMean", ["c2"], ["mean"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["mean", "w3"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=1)],
        "convolutions",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, side, side])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        [weights("w1", 16, 3, 3, 3), weights("w2", 16, 16, 3, 3), weights("w3", 16, 3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize(("side", "threads"), [(8, 1), (256, 2)])
def test_a_model_too_quick_to_share_gets_one_thread_and_a_heavy_one_the_setting(tmp_path, side, threads):
    """intra_op_threads = 2: a run of microseconds keeps one thread (waking the second costs more than
    it saves); a run of many milliseconds gets both."""
    models, labels = tmp_path / "models", tmp_path / "labels"
    labels.mkdir()
    config = EXPORTED_CONFIG.replace("height = 8", f"height = {side}").replace("width = 8", f"width = {side}")
    add_version(models, labels, "convolutions", {"model.onnx": convolutions_onnx(side), "model.toml": config},
                graphs.LABELS["tint"])
    servable = loader.load_servable(specs_of(models, labels)["convolutions"], loader.LoadOptions(intra_op_threads=2))
    assert servable.session.get_session_options().intra_op_num_threads == threads
    assert servable.run(np.zeros((2, 3, side, side), np.float32)).shape == (2, 3)
