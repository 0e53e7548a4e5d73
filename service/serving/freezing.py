"""A model traced and frozen into a GraphDef: its variables folded into constants, one input `input:0`,
one output `probs:0`. `pinpoint convert` publishes such a graph as a new version
(service/tools/convert.py); the server freezes a SavedModel's served signature the same way to convert
it with tf2onnx (service/serving/backends/saved_model.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from service.errors import first_line

INPUT_NAME = "input"
OUTPUT_NAME = "probs"


class ConvertError(ValueError):
    """The model cannot be converted as asked (one line, for the user)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """A loaded model: a callable on float batches, and what its input looks like."""
    path: Path
    format: str                                 # "keras" | "h5" | "saved_model"
    call: object                                # tf.Tensor [N, ...] -> tf.Tensor [N, classes]
    input_shape: tuple[int | None, ...]         # with the batch axis first (None)
    input_dtype: str
    rescales: bool                              # the model starts with its own Rescaling layer
    rescaling: str = ""                         # where that was seen (a layer's or a graph scope's name)
    owner: object = None                        # what `call` needs kept alive (a loaded SavedModel)


def freeze(source: Source, input_shape: tuple[int | None, ...]):
    """The source traced on `input_shape` ([None, ...]), variables folded into constants; only what
    computes `probs` is kept."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.util import deprecation

    spec = tf.TensorSpec(list(input_shape), tf.as_dtype(source.input_dtype), name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images):
        return tf.identity(source.call(images), name=OUTPUT_NAME)

    with deprecation.silence():  # extract_sub_graph is "designed for TF1": so are frozen graphs
        try:
            frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
        except (ValueError, TypeError, tf.errors.OpError) as error:
            raise ConvertError(f"{source.path}: cannot trace the model on {list(input_shape)} "
                               f"({first_line(error, None)})") from None
        return tf.compat.v1.graph_util.extract_sub_graph(frozen.graph.as_graph_def(), [OUTPUT_NAME])
