"""A frozen GraphDef run by TensorFlow: a graph and a session of its own per servable."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from service.serving.repository import ModelConfigError, ModelSpec
from service.serving.servable import Servable, output_rows, row_shape

BACKEND = "tensorflow"


class TensorFlowServable(Servable):
    backend = BACKEND

    def __init__(self, spec: ModelSpec, session: tf.compat.v1.Session, input_tensor: tf.Tensor,
                 output_tensor: tf.Tensor, batched: bool, reason: str = ""):
        self.spec, self.session, self.input, self.output = spec, session, input_tensor, output_tensor
        self.batched = batched  # False for graphs that take one (scalar) encoded image per run
        self.reason = reason  # why TensorFlow runs it (shown in status)

    def run(self, rows: np.ndarray) -> np.ndarray:
        """[N, ...] inputs -> [N, classes] float32 outputs. Once offered: on the inference thread only."""
        if self.batched:
            return output_rows(self.session.run(self.output, {self.input: rows}), len(rows))
        # A scalar input (classic retrain.py graphs) takes one image per run.
        return np.stack([output_rows(self.session.run(self.output, {self.input: row}), 1)[0] for row in rows])

    def close(self) -> None:
        self.session.close()


def parse_graph_def(spec: ModelSpec, data: bytes) -> tf.compat.v1.GraphDef:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:  # protobuf's DecodeError and friends
        raise ModelConfigError(f"{spec.graph_path}: not a frozen GraphDef ({error})") from None
    return graph_def


def load(spec: ModelSpec, data: bytes, intra_op_threads: int, inter_op_threads: int,
         reason: str = "") -> TensorFlowServable:
    """Import the graph into a fresh tf.Graph, check its tensors fit the config, open its session."""
    graph_def = parse_graph_def(spec, data)
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.graph_util.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as error:
            raise ModelConfigError(f"{spec.graph_path}: cannot import ({error})") from None
    try:
        input_tensor = graph.get_tensor_by_name(tensor_name(spec.input.tensor))
        output_tensor = graph.get_tensor_by_name(tensor_name(spec.output_tensor))
    except (KeyError, ValueError) as error:
        raise ModelConfigError(f"{spec.directory}/model.toml: {error}") from None
    batched = _check_input(spec, input_tensor)
    labels = output_tensor.shape[-1] if output_tensor.shape.rank else None
    if labels is not None and labels != len(spec.labels):
        raise ModelConfigError(
            f"{spec.name}: the output has {labels} classes but the labels file has {len(spec.labels)} lines")
    graph.finalize()  # nothing may add ops after load: a per-request op would leak memory
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra_op_threads,
                                      inter_op_parallelism_threads=inter_op_threads)
    session = tf.compat.v1.Session(graph=graph, config=config)
    return TensorFlowServable(spec, session, input_tensor, output_tensor, batched, reason)


def tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def _check_input(spec: ModelSpec, tensor: tf.Tensor) -> bool:
    kind, shape = spec.input.kind, tensor.shape
    if kind == "encoded":
        if tensor.dtype != tf.string:
            raise ModelConfigError(f"{spec.name}: an encoded input must be a string tensor, not {tensor.dtype.name}")
        return shape.rank != 0
    expected_dtype = tf.float32 if spec.input.dtype == "float32" else tf.uint8
    if tensor.dtype != expected_dtype:
        raise ModelConfigError(f"{spec.name}: input is {tensor.dtype.name} but model.toml says {spec.input.dtype}")
    expected = row_shape(spec)
    if shape.rank is not None:
        if shape.rank != len(expected) + 1:
            raise ModelConfigError(f"{spec.name}: input shape {shape} does not fit kind {kind!r}")
        for have, want in zip(shape.as_list()[1:], expected):
            if have is not None and have != want:
                raise ModelConfigError(f"{spec.name}: input shape {shape} does not fit {expected}")
    return True

