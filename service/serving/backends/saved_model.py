"""A SavedModel run by TensorFlow as it was saved: the signature's concrete function, called eagerly.

Loaded on the version's loader thread (tf.saved_model.load), run only on the inference thread. Rows
(`run`) go to the served signature's input and come from its output, the aliases chosen by the
repository (service/serving/repository.py); named tensors (`run_tensors`, a TensorCall) go to any of its
signatures, called with keyword tensors, and every output asked for comes back by its alias."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from service.errors import first_line
from service.serving.repository import ModelConfigError, ModelSpec
from service.serving.servable import Servable, output_rows, row_shape
from service.serving.tensor_call import TensorCall, callable_signatures

BACKEND = "tensorflow"


class SavedModelServable(Servable):
    backend = BACKEND
    batched = True

    def __init__(self, spec: ModelSpec, loaded, function, reason: str = ""):
        self.spec, self.loaded, self.function, self.reason = spec, loaded, function, reason

    def run(self, rows: np.ndarray) -> np.ndarray:
        """[N, ...] inputs -> [N, outputs] float32 rows. Once offered: on the inference thread only."""
        result = self.function(**{self.spec.input.tensor: tf.constant(rows)})
        return output_rows(result[self.spec.output_tensor].numpy(), len(rows))

    def run_tensors(self, call: TensorCall) -> dict[str, np.ndarray]:
        """A signature's named inputs -> its named outputs (those asked for). Inference thread only."""
        return call_signature(self.loaded.signatures[call.signature], call)

    def close(self) -> None:
        self.function = self.loaded = None  # TensorFlow frees the variables with their last reference


def call_signature(function, call: TensorCall) -> dict[str, np.ndarray]:
    """The signature's function on the call's tensors, as TF Serving's Predict runs it. An op's failure
    is raised with the op's own words (TF Serving's answer), not eager TensorFlow's first line ("Graph
    execution error:") and the Python stack it then prints."""
    try:
        result = function(**{alias: tf.constant(value) for alias, value in call.inputs.items()})
    except tf.errors.OpError as error:
        raise ValueError(_op_message(error.message)) from None
    return {alias: tensor.numpy() for alias, tensor in result.items() if not call.outputs or alias in call.outputs}


def _op_message(message: str) -> str:
    """The op's own words in eager TensorFlow's message: the line before the failing node's name
    ("\t [[{{node ...}}]]"), past the header and the Python stack where the op was defined."""
    lines = [line for line in message.splitlines() if line.strip()]
    for before, line in zip(lines, lines[1:]):
        if line.lstrip().startswith("[[{{node"):
            return before
    return lines[-1] if lines else "the graph failed"


def load(spec: ModelSpec, intra_op_threads: int, inter_op_threads: int, reason: str = "") -> SavedModelServable:
    _threads(intra_op_threads, inter_op_threads)
    loaded = restore(spec)
    missing = sorted(set(callable_signatures(spec.signatures)) - set(loaded.signatures))
    if missing:
        raise ModelConfigError(f"{spec.directory}: TensorFlow restores no function for signature "
                               f"{', '.join(map(repr, missing))}")
    function = loaded.signatures.get(spec.signature_name)
    if function is None:
        raise ModelConfigError(f"{spec.directory}: the SavedModel has no signature {spec.signature_name!r}")
    if spec.tensors_only:  # named tensors only: nothing to check against a model.toml's crop
        return SavedModelServable(spec, loaded, function, reason)
    feed = function.structured_input_signature[1].get(spec.input.tensor)
    if feed is None:
        raise ModelConfigError(f"{spec.directory}: signature {spec.signature_name!r} has no input "
                               f"{spec.input.tensor!r}")
    expected = row_shape(spec)
    shape = feed.shape
    if shape.rank is not None and (shape.rank != len(expected) + 1 or any(
            have is not None and have != want for have, want in zip(shape.as_list()[1:], expected))):
        raise ModelConfigError(f"{spec.name}: input {spec.input.tensor!r} is {shape} but model.toml describes "
                               f"[batch, {', '.join(map(str, expected))}]")
    fetch = function.structured_outputs.get(spec.output_tensor)
    if fetch is None:
        raise ModelConfigError(f"{spec.directory}: signature {spec.signature_name!r} has no output "
                               f"{spec.output_tensor!r}")
    classes = fetch.shape[-1] if fetch.shape.rank else None
    if classes is not None and classes != len(spec.labels):
        raise ModelConfigError(
            f"{spec.name}: the output has {classes} classes but the labels file has {len(spec.labels)} lines")
    return SavedModelServable(spec, loaded, function, reason)


def restore(spec: ModelSpec):
    try:
        return tf.saved_model.load(str(spec.directory))
    except Exception as error:  # a SavedModel TensorFlow cannot restore (missing variables, unknown ops ...)
        raise ModelConfigError(
            f"{spec.directory}: TensorFlow cannot load the SavedModel ({first_line(error)})") from None


_threads_set = False


def _threads(intra_op_threads: int, inter_op_threads: int) -> None:
    """TensorFlow's eager thread pools are per process and fixed once it has run anything: set them
    once, from the first SavedModel's options (frozen graphs have sessions of their own)."""
    global _threads_set
    if _threads_set:
        return
    _threads_set = True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:  # already initialised (a conversion or a graph ran eagerly first)
        pass


def frozen_graph(spec: ModelSpec) -> bytes:
    """The served signature frozen, for tf2onnx (made only when the ONNX cache lacks its conversion or
    TensorFlow's answers: a warm cache loads the version without freezing it); a signature that cannot
    be frozen refuses the conversion, so `auto` serves the SavedModel on TensorFlow as saved."""
    from service.serving import freezing
    from service.serving.backends import onnx_conversion

    try:
        return freeze(spec)
    except freezing.ConvertError as error:
        raise onnx_conversion.Unverified(f"it cannot be frozen for tf2onnx ({error})") from None


def freeze(spec: ModelSpec) -> bytes:
    """The served signature frozen into a GraphDef (variables folded into constants, as `pinpoint
    convert` does), its tensors input:0 -> probs:0 (service.serving.savedmodel.frozen_view describes it), so the
    frozen-graph path converts it with tf2onnx and verifies it against TensorFlow
    (service/serving/backends/onnx_conversion.py). freezing.ConvertError when it cannot be traced."""
    from service.serving import freezing

    try:
        loaded = tf.saved_model.load(str(spec.directory))
        function = loaded.signatures[spec.signature_name]
        feed = function.structured_input_signature[1][spec.input.tensor]
    except Exception as error:
        raise ModelConfigError(
            f"{spec.directory}: TensorFlow cannot load the SavedModel ({first_line(error)})") from None
    alias, output = spec.input.tensor, spec.output_tensor
    source = freezing.Source(path=spec.directory, format="saved_model",
                            call=lambda x: function(**{alias: x})[output],
                            input_shape=(None, *tuple(feed.shape)[1:]), input_dtype=feed.dtype.name,
                            rescales=False, rescaling="", owner=loaded)
    return freezing.freeze(source, source.input_shape).SerializeToString()
