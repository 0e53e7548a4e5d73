"""`pinpoint inspect` on TF1-era graphs (a flat MNIST-style MLP, a retrain.py-style graph fed JPEG
bytes) and `pinpoint convert` of a small Keras model, float32 and float16, served by the engine."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import graphs
from service import cli
from service.serving import repository
from service.tools.config_guess import guess_config
from service.tools.graph_description import describe, inspect_file

tf1 = tf.compat.v1


# --- TF1-era graphs --------------------------------------------------------------------------------

def mnist_mlp() -> tf1.GraphDef:
    """The TF1 tutorials' MNIST MLP: x [None, 784] -> hidden ReLU -> softmax `y`, frozen the TF1 way."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, 784], name="x")
        w1 = tf1.Variable(tf1.truncated_normal([784, 32], stddev=0.1), name="W1")
        b1 = tf1.Variable(tf.zeros([32]), name="b1")
        w2 = tf1.Variable(tf1.truncated_normal([32, 10], stddev=0.1), name="W2")
        b2 = tf1.Variable(tf.zeros([10]), name="b2")
        hidden = tf.nn.relu(tf.matmul(x, w1) + b1)
        tf.nn.softmax(tf.matmul(hidden, w2) + b2, name="y")
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            return tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["y"])


def retrain_graph() -> tf1.GraphDef:
    """Shaped like retrain.py's output_graph.pb: JPEG bytes -> DecodeJpeg -> resize to a constant size
    -> a "bottleneck" behind a PlaceholderWithDefault -> final_result (Softmax)."""
    graph = tf.Graph()
    with graph.as_default():
        contents = tf1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        decoded = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        batch = tf.expand_dims(tf.cast(decoded, tf.float32), 0, name="ExpandDims")
        resized = tf1.image.resize_bilinear(batch, tf.constant([24, 24], name="ResizeBilinear/size"),
                                            name="ResizeBilinear")
        pooled = tf.reduce_mean((resized - 128.0) / 128.0, axis=[1, 2], name="pool")
        bottleneck = tf1.placeholder_with_default(pooled, [None, 3], name="input/BottleneckInputPlaceholder")
        weights = tf.constant(np.eye(3, dtype=np.float32) * 8.0, name="final_training_ops/weights")
        logits = tf.matmul(bottleneck, weights, name="final_training_ops/Wx_plus_b/MatMul")
        tf.nn.softmax(logits, name="final_result")
    return graph.as_graph_def()


def write_graph(tmp_path: Path, name: str, graph_def) -> Path:
    path = tmp_path / f"{name}.pb"
    path.write_bytes(graph_def.SerializeToString())
    return path


def read_back(tmp_path: Path, name: str, toml: str, graph: Path, labels: int) -> repository.ModelSpec:
    """The config as the server reads it, in a repository of its own."""
    version_dir = tmp_path / "repo" / "models" / name / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "model.toml").write_text(toml)
    (version_dir / "frozen_graph.pb").write_bytes(graph.read_bytes())
    labels_dir = tmp_path / "repo" / "labels"
    labels_dir.mkdir(exist_ok=True)
    (labels_dir / f"{name}.txt").write_text("".join(f"l{i}\n" for i in range(labels)))
    return repository.read_spec(name, 1, version_dir, labels_dir)


def test_inspect_a_tf1_flat_mlp(tmp_path, capsys):
    path = write_graph(tmp_path, "mnist", mnist_mlp())
    description = inspect_file(path)
    assert [(p.name, p.dtype, p.shape, p.has_default) for p in description.placeholders] == \
        [("x:0", "float32", (None, 784), False)]
    assert [(t.name, t.dtype, t.shape, t.op) for t in description.outputs] == \
        [("y:0", "float32", (None, 10), "Softmax")]
    assert description.weights == 784 * 32 + 32 + 32 * 10 + 10 and not description.variables

    assert cli.main(["inspect", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "x:0" in printed and "shape: (-1, 784)" in printed and "y:0" in printed and "op: Softmax" in printed

    assert cli.main(["inspect", str(path), "--config"]) == 0
    toml = capsys.readouterr().out
    spec = read_back(tmp_path, "mnist", toml, path, labels=10)
    assert (spec.input.tensor, spec.input.kind, spec.input.dtype) == ("x:0", "flat", "float32")
    assert (spec.input.height, spec.input.width, spec.input.channels) == (28, 28, 1)
    assert spec.input.scale == pytest.approx(1 / 255)
    assert (spec.output_tensor, spec.softmax) == ("y:0", False)


def test_inspect_a_retrain_style_encoded_graph(tmp_path, capsys):
    path = write_graph(tmp_path, "retrained", retrain_graph())
    description = inspect_file(path)
    assert [(p.name, p.dtype, p.shape, p.has_default) for p in description.placeholders] == [
        ("DecodeJpeg/contents:0", "string", (), False),
        ("input/BottleneckInputPlaceholder:0", "float32", (None, 3), True)]
    assert [(t.name, t.dtype, t.shape, t.op) for t in description.outputs] == \
        [("final_result:0", "float32", (None, 3), "Softmax")]
    assert (description.image_size, description.decode_channels) == ((24, 24), 3)

    assert cli.main(["inspect", str(path), "--config"]) == 0
    spec = read_back(tmp_path, "retrained", capsys.readouterr().out, path, labels=3)
    assert (spec.input.tensor, spec.input.kind) == ("DecodeJpeg/contents:0", "encoded")
    assert (spec.input.height, spec.input.width, spec.input.channels) == (24, 24, 3)
    assert (spec.output_tensor, spec.softmax) == ("final_result:0", False)


@pytest.mark.parametrize("name, kind, input_name, output_name, softmax", [
    ("bright", "flat", "x:0", "logits:0", True),
    ("jpeg", "encoded", "DecodeJpeg/contents:0", "final_result:0", False),
    ("tint", "image", "input:0", "probs:0", False),
])
def test_config_guesses_match_the_suites_hand_written_configs(name, kind, input_name, output_name, softmax):
    guess = guess_config(describe(graphs.BUILDERS[name]()))
    assert (guess.kind, guess.input.name, guess.output.name) == (kind, input_name, output_name)
    assert ("softmax = true" in guess.toml) == softmax


@pytest.mark.parametrize("name", ["color", "pattern", "theme"])
def test_the_demo_models_configs_are_what_the_one_model_toml_writer_writes(name):
    """train-demo writes model.toml through service/tools/model_toml.py, as convert and inspect do: from
    each demo's recipe it gives the committed file byte for byte."""
    from service.tools.train import demos, freeze, lite0, topics

    if name == "theme":
        recipe = dict(size=topics.SIZE, scale=lite0.SCALE, offset=lite0.OFFSET, fraction=topics.FRACTION,
                      min_px=topics.MIN_PX, resize=topics.RESIZE, comment=topics.COMMENT)
    else:
        demo = demos.get(name)
        recipe = dict(size=demo.size, scale=demo.scale, offset=demo.offset, fraction=demo.fraction,
                      min_px=demo.min_px, resize=demo.resize, comment=demo.comment)
    from service.tools.train import run_frozen

    root = Path(__file__).resolve().parents[1]
    served = run_frozen.spec(root / "models", root / "labels", name).directory  # theme is at version 2
    committed = (served / "model.toml").read_text()
    assert freeze.model_toml(labels_name=name, **recipe) == committed


def test_inspect_json_and_refusals(tmp_path, capsys):
    path = write_graph(tmp_path, "tint", graphs.BUILDERS["tint"]())
    assert cli.main(["inspect", str(path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["placeholders"][0]["name"] == "input:0" and document["outputs"][0]["shape"] == [None, 3]

    for bad in (tmp_path / "notes.pb", tmp_path / "empty.pb"):
        bad.write_bytes(b"" if bad.name == "empty.pb" else b"not a graph, just words\n")
        assert cli.main(["inspect", str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
        assert "is not a TensorFlow GraphDef" in captured.err
    assert cli.main(["inspect", str(tmp_path / "missing.pb")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["inspect", str(path), "--config", "--output", "nothing:0"]) == 2
    assert "not a candidate output" in capsys.readouterr().err


def test_inspect_describes_a_graph_with_ops_this_tensorflow_lacks(tmp_path):
    graph_def = tf1.GraphDef()
    x = graph_def.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = tf.float32.as_datatype_enum
    x.attr["shape"].shape.dim.add().size = -1
    x.attr["shape"].shape.dim.add().size = 784
    old = graph_def.node.add(name="old", op="SomeRemovedContribOp", input=["x"])
    old.attr["T"].type = tf.float32.as_datatype_enum
    description = inspect_file(write_graph(tmp_path, "old", graph_def))
    assert not description.shape_inference and "SomeRemovedContribOp" in description.import_error
    assert [(p.name, p.dtype, p.shape) for p in description.placeholders] == [("x:0", "float32", (None, 784))]
    assert [(t.name, t.dtype, t.shape) for t in description.outputs] == [("old:0", "float32", None)]


# --- convert ---------------------------------------------------------------------------------------

LABELS = ("red", "green", "blue", "grey", "other")


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(len(LABELS), activation="softmax"),
    ])
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def converted(tmp_path_factory, keras_model):
    """The model converted twice into one repository: version 1 float32, version 2 --float16."""
    _, path = keras_model
    root = tmp_path_factory.mktemp("converted")
    labels_file = root / "tiny-labels.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    from service.tools.convert import convert

    full = convert(path, "tiny", repository=root / "models", labels_file=str(labels_file))
    half = convert(path, "tiny", repository=root / "models", float16=True)
    return root, full, half


def test_convert_publishes_a_version_that_reads_back(converted):
    root, full, half = converted
    models, labels = root / "models", root / "labels"
    assert (full.version, half.version) == (1, 2)       # one more than the highest, by default
    for report in (full, half):
        assert sorted(p.name for p in report.version_dir.iterdir()) == ["frozen_graph.pb", "model.toml"]
        assert report.graph_path.stat().st_size == report.size_bytes
        spec = repository.read_spec("tiny", report.version, report.version_dir, labels)
        assert spec.labels == LABELS
        assert (spec.input.tensor, spec.input.kind, spec.input.height, spec.input.width, spec.input.channels) == \
            ("input:0", "image", 16, 16, 3)
        assert spec.input.scale == pytest.approx(1 / 255) and spec.output_tensor == "probs:0" and not spec.softmax
        assert os.stat(report.version_dir).st_mode & 0o005 == os.stat(models / "tiny").st_mode & 0o005
    assert half.warnings == ()                          # the labels written by version 1 are reused
    assert not [p for p in (models / "tiny").iterdir() if p.name.startswith(".")]   # no staging left
    assert [p.name for p in labels.iterdir()] == ["tiny.txt"]


def test_convert_reports_size_and_difference(converted):
    _, full, half = converted
    print(f"\nfloat32: {full.size_bytes} bytes, max abs diff {full.max_abs_diff:.3g}; "
          f"float16: {half.size_bytes} bytes (x{half.size_bytes / full.size_bytes:.2f}), "
          f"max abs diff {half.max_abs_diff:.3g}, top-1 agreement {half.top1_agreement:.0%}")
    assert full.max_abs_diff < 1e-5 and full.top1_agreement == 1.0 and full.halved_constants == 0
    assert half.float32_size_bytes == full.size_bytes
    assert 0.4 < half.size_bytes / full.size_bytes < 0.65       # weights dominate; the graph's structure stays
    assert half.halved_constants >= 3
    assert 0 < half.max_abs_diff < 1e-2 and half.top1_agreement >= 0.9


def test_convert_command_refuses_to_overwrite_and_checks_labels(converted, keras_model, tmp_path, capsys):
    root, full, _ = converted
    before = full.graph_path.read_bytes()
    assert cli.main(["convert", str(keras_model[1]), "--name", "tiny", "--version", "1",
                     "--repository", str(root / "models")]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert full.graph_path.read_bytes() == before

    wrong = tmp_path / "three.txt"
    wrong.write_text("a\nb\nc\n")
    assert cli.main(["convert", str(keras_model[1]), "--name", "other", "--labels", str(wrong),
                     "--repository", str(tmp_path / "models")]) == 2
    assert "has 3 labels but the model has 5 outputs" in capsys.readouterr().err
    assert not (tmp_path / "models" / "other").exists() and not (tmp_path / "labels").exists()

    assert cli.main(["convert", str(tmp_path / "three.txt"), "--name", "other"]) == 2
    assert "expected a .keras or .h5 file" in capsys.readouterr().err


def test_convert_command_json_report_and_default_labels(keras_model, tmp_path, capsys):
    models = tmp_path / "models"
    assert cli.main(["convert", str(keras_model[1]), "--name", "plain", "--repository", str(models),
                     "--version", "7", "--samples", "4", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["version"] == 7 and report["samples"] == 4 and report["classes"] == 5
    assert "label_0..label_4" in captured.err     # no --labels: a warning, and placeholder names
    assert (tmp_path / "labels" / "plain.txt").read_text().split() == [f"label_{i}" for i in range(5)]


@pytest.mark.parametrize("fmt", ["h5", "saved_model"])
def test_convert_reads_h5_files_and_saved_models(keras_model, tmp_path, fmt):
    from service.tools.convert import convert

    model, _ = keras_model
    source = tmp_path / ("tiny.h5" if fmt == "h5" else "tiny_saved_model")
    if fmt == "h5":
        model.save(source)
    else:
        model.export(source, verbose=False)
    report = convert(source, "tiny", repository=tmp_path / "models", samples=8)
    assert report.max_abs_diff < 1e-5 and report.top1_agreement == 1.0 and report.classes == len(LABELS)
    assert repository.read_spec("tiny", 1, report.version_dir, tmp_path / "labels").input.kind == "image"


def uniform_png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def top_labels(engine, data: bytes, model: str) -> tuple[list[tuple[str, float]], int]:
    """(label, score) pairs and the version that answered, through the engine's in-process API."""
    if hasattr(engine, "classify_image"):
        result = engine.classify_image(data, [(32, 24)], models=[model])
        labels = [(item.label, item.score) for item in result.predictions[0].results[model]]
        return labels, result.models[model].version
    answer = engine.classify(data, points=[(32, 24)], models=[model])
    labels = [(item["label"], item["score"]) for item in answer["predictions"][0]["results"][model]]
    return labels, answer["models"][model]["version"]


def test_the_converted_version_serves(converted, keras_model):
    from service.engine import Engine

    root, _, half = converted
    model, _ = keras_model
    colour = (200, 40, 90)
    # A uniform image: every crop, resized, is the same colour, so the Keras model's answer is known.
    expected = np.asarray(model(np.full((1, 16, 16, 3), colour, np.float32) / 255.0, training=False))[0]
    with Engine.open(root / "models", root / "labels") as engine:
        labels, version = top_labels(engine, uniform_png(colour), "tiny")
    assert version == half.version                        # the highest version serves
    assert labels[0][0] == LABELS[int(expected.argmax())]
    assert labels[0][1] == pytest.approx(float(expected.max()), abs=1e-2)


# --- convert: a model that scales its input itself -------------------------------------------------

def astronaut_png() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def rescaling_model():
    """A Keras model whose first layer is Rescaling(1/255): it takes raw 0..255 pixels."""
    import keras

    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(len(LABELS), activation="softmax"),
    ])


@pytest.mark.parametrize("save", ["model.export", "tf.saved_model.save", "model.save .keras"])
def test_convert_keeps_the_models_own_rescaling_and_serves_its_answers(rescaling_model, tmp_path, save):
    from service.classify.imaging import CropSpec, DecodedImage, crop
    from service.engine import Engine
    from service.tools.convert import convert

    source = tmp_path / ("model.keras" if save.endswith(".keras") else "saved_model")
    if save == "model.export":
        rescaling_model.export(source, verbose=False)
    elif save == "tf.saved_model.save":
        tf.saved_model.save(rescaling_model, str(source))
    else:
        rescaling_model.save(source)

    report = convert(source, "raw", repository=tmp_path / "models", samples=12)

    assert report.scale == 1.0                          # raw pixels: the model divides by 255 itself
    assert "rescales its input itself" in report.warnings[0] and "rescaling" in report.warnings[0]
    assert report.inputs.startswith("windows of scikit-image's sample photos")
    assert report.max_abs_diff < 1e-5 and report.top1_agreement == 1.0

    # What the server answers at a point of a photograph is what the Keras model says of that window.
    photo = astronaut_png()
    window = crop(DecodedImage(rgb=Image.open(io.BytesIO(photo)).convert("RGB"), format="PNG", width=512,
                               height=512), CropSpec(16, 16, 3, fraction=0.15, min_px=24), 100, 400)
    expected = np.asarray(rescaling_model(window[np.newaxis].astype(np.float32), training=False))[0]
    with Engine.open(tmp_path / "models", tmp_path / "labels") as engine:
        result = engine.classify_image(photo, [(100, 400)], models=["raw"], top_k=len(LABELS))
    served = {item.label: item.score for item in result.predictions[0].results["raw"]}
    assert [served[f"label_{i}"] for i in range(len(LABELS))] == pytest.approx(expected.tolist(), abs=1e-4)


def test_convert_warns_when_the_answers_barely_move_between_photos(tmp_path, capsys):
    """A SavedModel that divides by 255 in its own code (no Keras layer to find): converted with the
    default scale 1/255 it would see pixels scaled twice; the check on real photos says so."""

    class Scaled(tf.Module):
        def __init__(self):
            super().__init__()
            weights = np.random.default_rng(0).normal(0, 0.1, size=(16 * 16 * 3, len(LABELS)))
            self.w = tf.Variable(weights.astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
        def __call__(self, pixels):
            return {"scores": tf.nn.softmax(tf.matmul(tf.reshape(pixels / 255.0, [-1, 16 * 16 * 3]), self.w))}

    module = Scaled()
    tf.saved_model.save(module, str(tmp_path / "scaled"), signatures=module.__call__)
    assert cli.main(["convert", str(tmp_path / "scaled"), "--name", "scaled", "--samples", "16",
                     "--repository", str(tmp_path / "models")]) == 0
    err = capsys.readouterr().err
    assert "the model's answers barely change with scale 0.00392157" in err
    assert "convert it again with --scale 1" in err

    assert cli.main(["convert", str(tmp_path / "scaled"), "--name", "scaled", "--samples", "16", "--scale", "1",
                     "--repository", str(tmp_path / "models")]) == 0
    assert "barely change" not in capsys.readouterr().err


def test_inspect_names_keras_files_and_saved_models_and_says_to_convert_them(keras_model, tmp_path, capsys):
    model, keras_file = keras_model
    model.export(tmp_path / "exported", verbose=False)
    model.save(tmp_path / "tiny.h5")
    for given, what in ((keras_file, "is a Keras model file"), (tmp_path / "tiny.h5", "is a Keras model file"),
                        (tmp_path / "exported", "is a SavedModel directory"),
                        (tmp_path / "exported" / "saved_model.pb", "is a SavedModel's saved_model.pb")):
        assert cli.main(["inspect", str(given)]) == 2
        err = capsys.readouterr().err
        assert what in err and "not a frozen GraphDef" in err and "`pinpoint convert " in err


def test_a_saved_model_dropped_into_the_repository_is_a_version_of_its_own(keras_model, tmp_path):
    """No longer a problem naming `pinpoint convert`: it serves as it is (tests/test_savedmodel.py)."""
    model, _ = keras_model
    model.export(tmp_path / "models" / "mine" / "1", verbose=False)
    discovery = repository.scan(tmp_path / "models", tmp_path / "labels")
    assert discovery.problems == {}
    spec = discovery.versions["mine"][1]
    assert spec.is_saved_model and spec.signature_name == "serving_default"
    assert (spec.input.height, spec.input.width, spec.input.channels) == (16, 16, 3)
    assert len(spec.labels) == len(LABELS)
