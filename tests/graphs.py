"""Tiny frozen graphs, one per input kind, so the suite tests every kind in seconds.

Each computes something a test can predict from the pixels it sends:
- `tint`   (image, NHWC float32): softmax of the crop's mean red, green and blue -> red/green/blue
- `bright` (flat, TF1-style [None, 16] greyscale vector): dark vs bright by mean luma
- `jpeg`   (encoded, a scalar string like retrain.py's DecodeJpeg/contents): red/green/blue again
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

tf1 = tf.compat.v1

MODEL_CONFIGS = {
    "tint": """
graph = "frozen_graph.pb"
[input]
tensor = "input:0"
kind = "image"
height = 8
width = 8
channels = 3
dtype = "float32"
scale = 0.00392156862745098
[output]
tensor = "probs:0"
[crop]
fraction = 0.1
min_px = 8
keep_aspect = true
resize = "bilinear"
""",
    "bright": """
graph = "frozen_graph.pb"
[input]
tensor = "x:0"
kind = "flat"
height = 4
width = 4
channels = 1
dtype = "float32"
mean = [127.5]
std = [127.5]
[output]
tensor = "logits:0"
softmax = true
[crop]
box = [16, 16]
keep_aspect = false
resize = "box"
""",
    "slow": """
graph = "frozen_graph.pb"
[input]
tensor = "input:0"
kind = "image"
height = 8
width = 8
channels = 3
scale = 0.00392156862745098
[output]
tensor = "probs:0"
""",
    "jpeg": """
graph = "frozen_graph.pb"
[input]
tensor = "DecodeJpeg/contents:0"
kind = "encoded"
height = 16
width = 16
channels = 3
[output]
tensor = "final_result:0"
[crop]
fraction = 0.1
min_px = 8
""",
}
LABELS = {"tint": "red\ngreen\nblue\n", "bright": "dark\nbright\n", "jpeg": "red\ngreen\nblue\n",
          "slow": "red\ngreen\nblue\n"}


def _tint(reverse: bool = False) -> tf1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        # A variable, frozen below, as a trained model's weights would be.
        sharpness = tf1.Variable(12.0, name="sharpness")
        mean = tf.reduce_mean(images, axis=[1, 2])
        if reverse:  # a "version 2" whose answers differ: red reads as blue and blue as red
            mean = tf.reverse(mean, axis=[1])
        tf.nn.softmax(mean * sharpness, name="probs")
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            return tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["probs"])


def _bright() -> tf1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        flat = tf1.placeholder(tf.float32, [None, 16], name="x")  # values in -1..1
        mean = tf.reduce_mean(flat, axis=1, keepdims=True)
        tf.concat([-mean * 8.0, mean * 8.0], axis=1, name="logits")
    return graph.as_graph_def()


def _jpeg() -> tf1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        contents = tf1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        pixels = tf.cast(tf.io.decode_jpeg(contents, channels=3), tf.float32) / 255.0
        mean = tf.reduce_mean(pixels, axis=[0, 1])
        tf.nn.softmax(tf.expand_dims(mean * 12.0, 0), name="final_result")
    return graph.as_graph_def()


def _slow(repeats: int = 30) -> tf1.GraphDef:
    """`tint` plus a pile of matrix products (tens of ms a run): something to overload and time out."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 8, 8, 3], name="input")
        mean = tf.reduce_mean(images, axis=[1, 2])
        # Tied to the input so TensorFlow cannot fold the work away at load time.
        work = tf.ones([512, 512]) * (1.0 + 0.0 * tf.reduce_sum(mean))
        for _ in range(repeats):
            work = tf.tanh(tf.matmul(work, work) / 512.0)
        tf.nn.softmax(mean * 12.0 + 0.0 * tf.reduce_mean(work), name="probs")
    return graph.as_graph_def()


BUILDERS = {"tint": _tint, "bright": _bright, "jpeg": _jpeg, "slow": _slow}


def graph_bytes(name: str = "tint", **options) -> bytes:
    """A builder's graph as the bytes written to disk, the same in every process: protobuf writes a
    map's entries (each node's attributes) in an order that varies from process to process unless asked
    to be deterministic, and the ONNX conversion cache is keyed by these bytes. With them the same, a
    server the tests start loads its tiny graphs from the session's cache (tests/conftest.py) without
    importing TensorFlow to convert them again."""
    return BUILDERS[name](**options).SerializeToString(deterministic=True)


def publish_version(models: Path, name: str, version: int, graph: bytes | None = None,
                    config: str | None = None) -> Path:
    """Publish a version the documented way: write it beside the model, then rename it into place.
    By default a `tint` whose answers are reversed, so a test can tell which version answered."""
    staging = models / name / f".staging-{version}"
    staging.mkdir(parents=True)
    graph = graph_bytes("tint", reverse=True) if graph is None else graph
    (staging / "frozen_graph.pb").write_bytes(graph)
    (staging / "model.toml").write_text(MODEL_CONFIGS[name] if config is None else config)
    target = models / name / str(version)
    staging.rename(target)
    return target
DEFAULT_MODELS = ("tint", "bright", "jpeg")


def write_repository(root: Path, names=DEFAULT_MODELS) -> tuple[Path, Path]:
    """models/<name>/1/{model.toml,frozen_graph.pb} and labels/<name>.txt under root."""
    models, labels = root / "models", root / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    for name in names:
        version_dir = models / name / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        (version_dir / "frozen_graph.pb").write_bytes(graph_bytes(name))
        (version_dir / "model.toml").write_text(MODEL_CONFIGS[name])
        (labels / f"{name}.txt").write_text(LABELS[name])
    return models, labels
