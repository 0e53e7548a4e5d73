"""The model `pinpoint convert` is given, loaded: a Keras model (.keras, .h5) or a SavedModel directory,
as a callable on float batches with one input and one output (service.serving.freezing.Source), and
whether it rescales its input itself.

A Keras `Rescaling` or `Normalization` layer before its first learning layer, found in a .keras/.h5
model's layers and in a SavedModel's traced graph (`model.export()`, `tf.saved_model.save()`), means the
model takes raw 0..255 pixels: convert then writes scale 1 instead of 1/255.
"""

from __future__ import annotations

import re
from pathlib import Path

from service.errors import first_line
from service.serving.freezing import ConvertError, Source


def check_source(path: str | Path) -> Path:
    """The path, if it can hold a model to convert (a SavedModel directory, a .keras or .h5 file); else
    ConvertError. No TensorFlow here: `pinpoint convert` says a mistyped path before its import."""
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ConvertError(f"{path} is a directory without saved_model.pb: not a SavedModel")
        return path
    if not path.is_file():
        raise ConvertError(f"{path} does not exist")
    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ConvertError(f"{path}: expected a .keras or .h5 file, or a SavedModel directory")
    return path


def load_source(path: str | Path, output_key: str | None = None) -> Source:
    path = check_source(path)
    if path.is_dir():
        return _saved_model(path, output_key)
    import keras
    import tensorflow as tf

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for files it cannot read
        raise ConvertError(f"{path}: Keras cannot load it ({first_line(error, None)})") from None
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ConvertError(f"{path}: the model has no defined input (a subclassed model that was never built?)")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConvertError(f"{path}: the model has {len(inputs)} inputs and {len(outputs)} outputs; Pinpoint "
                           "serves one input and one output")
    rescaling = ""
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            rescaling = f"layer {layer.name!r}"
            break
        if layer.weights:   # a layer that learns: the model's own preprocessing, if any, came before it
            break
    return Source(path=path, format="h5" if path.suffix.lower() != ".keras" else "keras",
                  call=lambda x: model(x, training=False), input_shape=(None, *tuple(inputs[0].shape)[1:]),
                  input_dtype=tf.as_dtype(inputs[0].dtype).name, rescales=bool(rescaling), rescaling=rescaling)


# A Keras preprocessing layer as a SavedModel's traced graph names it: `sequential/rescaling_1/mul`.
_RESCALING_SCOPE = re.compile(r"^(rescaling|normalization)(_\d+)?$", re.IGNORECASE)
_LEARNING_OPS = {"Conv2D", "MatMul", "DepthwiseConv2dNative", "Conv3D", "BatchMatMulV2", "Conv2DBackpropInput"}


def graph_rescaling(graph_def) -> str:
    """The scope of a Keras Rescaling/Normalization layer that the graph (or one of its functions) runs
    before its first convolution or matrix product, else "". Node order in a traced function follows the
    layers' order, so a preprocessing layer placed later (on features) does not count."""
    bodies = [list(graph_def.node)] + [list(function.node_def) for function in graph_def.library.function]
    for nodes in bodies:
        for node in nodes:
            if node.op in _LEARNING_OPS:
                break
            for scope in node.name.split("/")[:-1]:
                if _RESCALING_SCOPE.match(scope):
                    return "/".join(node.name.split("/")[:node.name.split("/").index(scope) + 1])
    return ""


def _saved_model(path: Path, output_key: str | None) -> Source:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        raise ConvertError(f"{path}: cannot load the SavedModel ({first_line(error, None)})") from None
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ConvertError(f"{path}: the SavedModel has no signature to serve")
    signature = signatures.get("serving_default") or next(iter(signatures.values()))
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise ConvertError(f"{path}: the signature takes {len(inputs)} inputs ({', '.join(inputs)}); Pinpoint "
                           "feeds one")
    (input_key, input_spec), = inputs.items()
    outputs = signature.structured_outputs
    if output_key is None:
        if len(outputs) != 1:
            raise ConvertError(f"{path}: the signature has outputs {', '.join(outputs)}: choose one with --output")
        output_key = next(iter(outputs))
    elif output_key not in outputs:
        raise ConvertError(f"{path}: no output {output_key!r} (outputs: {', '.join(outputs)})")
    scope = graph_rescaling(signature.graph.as_graph_def())
    return Source(path=path, format="saved_model", call=lambda x: signature(**{input_key: x})[output_key],
                  input_shape=(None, *tuple(input_spec.shape)[1:]), input_dtype=input_spec.dtype.name,
                  rescales=bool(scope), rescaling=f"graph scope {scope!r}" if scope else "", owner=loaded)
