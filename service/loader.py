"""Frozen GraphDef -> Servable: the graph imported into the shared tf.Graph, its tensors resolved.

Called only on the runtime thread (service/runtime.py), the one thread that touches TensorFlow.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from service.repository import ModelConfigError, ModelSpec


@dataclasses.dataclass(frozen=True)
class Servable:
    spec: ModelSpec
    input: tf.Tensor
    output: tf.Tensor
    batched: bool  # False for graphs that take one (scalar) encoded image per run

    @property
    def name(self) -> str:
        return self.spec.name


def read_graph_def(spec: ModelSpec) -> tf.compat.v1.GraphDef:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(spec.graph_path.read_bytes())
    except Exception as error:  # protobuf's DecodeError and friends
        raise ModelConfigError(f"{spec.graph_path}: not a frozen GraphDef ({error})") from None
    return graph_def


def import_servable(graph: tf.Graph, spec: ModelSpec) -> Servable:
    """Import the model into `graph` under the scope `<name>/` and check its tensors fit the config."""
    graph_def = read_graph_def(spec)
    scope = spec.name
    with graph.as_default():
        try:
            tf.graph_util.import_graph_def(graph_def, name=scope)
        except (ValueError, tf.errors.OpError) as error:
            raise ModelConfigError(f"{spec.graph_path}: cannot import ({error})") from None
    try:
        input_tensor = graph.get_tensor_by_name(f"{scope}/{_tensor_name(spec.input.tensor)}")
        output_tensor = graph.get_tensor_by_name(f"{scope}/{_tensor_name(spec.output_tensor)}")
    except (KeyError, ValueError) as error:
        raise ModelConfigError(f"{spec.directory}/model.toml: {error}") from None
    batched = _check_input(spec, input_tensor)
    labels = output_tensor.shape[-1] if output_tensor.shape.rank else None
    if labels is not None and labels != len(spec.labels):
        raise ModelConfigError(
            f"{spec.name}: the output has {labels} classes but the labels file has {len(spec.labels)} lines")
    return Servable(spec=spec, input=input_tensor, output=output_tensor, batched=batched)


def _tensor_name(name: str) -> str:
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
    expected = ([spec.input.height, spec.input.width, spec.input.channels] if kind == "image"
                else [spec.input.height * spec.input.width * spec.input.channels])
    if shape.rank is not None:
        if shape.rank != len(expected) + 1:
            raise ModelConfigError(f"{spec.name}: input shape {shape} does not fit kind {kind!r}")
        for have, want in zip(shape.as_list()[1:], expected):
            if have is not None and have != want:
                raise ModelConfigError(f"{spec.name}: input shape {shape} does not fit {expected}")
    return True
