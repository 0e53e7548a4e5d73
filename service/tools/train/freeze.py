"""Keras model -> frozen GraphDef + model.toml + labels file, the layout docs/models.md defines."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

INPUT_NAME = "input"
OUTPUT_NAME = "probs"


def frozen_graph_def(model, height: int, width: int, channels: int = 3) -> tf.compat.v1.GraphDef:
    """Variables folded into constants, inference mode (BatchNorm uses its moving averages, dropout
    is off), input placeholder `input:0` and output `probs:0` so model.toml can name them."""
    spec = tf.TensorSpec([None, height, width, channels], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images):
        return tf.identity(model(images, training=False), name=OUTPUT_NAME)

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    # Keep only what computes `probs` (drops the function's trailing Identity and any leftovers).
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, [OUTPUT_NAME])


def half_weights(graph_def, min_elements: int = 256):
    """The same graph with every float32 constant of at least `min_elements` stored as float16 and
    cast back to float32 where it is used: the file halves, the arithmetic stays float32 (TensorFlow
    and tf2onnx fold the casts when they load it). The answers move by the weights' rounding only;
    the caller measures how far."""
    import numpy as np
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import tensor_util

    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.op == "Const" and node.attr["dtype"].type == types_pb2.DT_FLOAT:
            value = tensor_util.MakeNdarray(node.attr["value"].tensor)
            if value.size >= min_elements:
                half = out.node.add(name=f"{node.name}/float16", op="Const")
                half.attr["dtype"].type = types_pb2.DT_HALF
                half.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value.astype(np.float16)))
                cast = out.node.add(name=node.name, op="Cast", input=[half.name])
                cast.attr["SrcT"].type, cast.attr["DstT"].type = types_pb2.DT_HALF, types_pb2.DT_FLOAT
                cast.attr["Truncate"].b = False
                continue
        out.node.add().CopyFrom(node)
    return out


def check_frozen(model, models_dir: Path, labels_dir: Path, name: str, crops, *, scale: float, offset: float,
                 tolerance: float = 1e-3, same_top1: bool = False) -> float:
    """The largest difference between the written frozen graph, run as Pinpoint runs it, and the Keras
    model on uint8 `crops`; stops the build when it exceeds `tolerance` (or, with same_top1, when a top
    answer differs): serving must answer what was built."""
    import numpy as np

    from service.tools.train import run_frozen

    with run_frozen.FrozenModel(models_dir, labels_dir, name) as frozen:
        served = frozen.probabilities(crops)
    built = model.predict(crops.astype(np.float32) * scale + offset, verbose=0)
    gap = float(np.abs(served - built).max())
    if gap > tolerance or (same_top1 and not np.array_equal(served.argmax(axis=1), built.argmax(axis=1))):
        raise SystemExit(f"[{name}] frozen graph disagrees with the Keras model (max difference {gap:.2g})")
    return gap


def write_model(graph_def, version_dir: Path, config_toml: str) -> Path:
    version_dir.mkdir(parents=True, exist_ok=True)
    graph_path = version_dir / "frozen_graph.pb"
    graph_path.write_bytes(graph_def.SerializeToString())
    (version_dir / "model.toml").write_text(config_toml, encoding="utf-8")
    return graph_path


def write_labels(labels, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


def model_toml(*, labels_name: str, size: int, scale: float, offset: float, fraction: float,
               min_px: int, resize: str, comment: str) -> str:
    from service.tools import model_toml

    return model_toml.render(
        comments=[comment, "Written by `python -m service.tools.train`; the format is docs/models.md."],
        top=[("graph", "frozen_graph.pb"), ("labels", labels_name)],
        input=[("tensor", f"{INPUT_NAME}:0"), ("kind", "image"), ("height", size), ("width", size),
               ("channels", 3), ("dtype", "float32"), ("scale", scale), ("offset", offset)],
        output=[("tensor", f"{OUTPUT_NAME}:0"), ("softmax", False)],
        crop=model_toml.crop(fraction, min_px, resize))
