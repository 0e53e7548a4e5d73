"""A version's web copy: the ONNX model the test page runs with onnxruntime-web (docs/browser.md).

float32 is exactly what the ONNX Runtime backend serves: the version's own model.onnx, or the tf2onnx
conversion of its frozen graph, verified against TensorFlow (onnx_conversion.py; its cache is shared,
so a version already serving on ONNX Runtime converts nothing here). float16 stores the large weight
tensors as half floats, each followed by a Cast back to float32, so the download halves while the
arithmetic stays float32 (what `tensorflowjs_converter --quantize_float16` does for TF.js). Its cost is
measured here, on the same check inputs the conversion is verified on, and published with the file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.serving.backends import onnx_conversion, onnx_runtime
from service.serving.model_run import probabilities
from service.serving.repository import ModelSpec
from service.serving.servable import LoadOptions, check_rows
from service.serving.web_model import NotForTheBrowser, WebFile, WebModel

HALF_MIN_ELEMENTS = 256  # smaller float tensors (biases, shapes) stay float32: their Cast costs more than it saves
HALF_MAX = float(np.finfo(np.float16).max)


def export(spec: ModelSpec, options: LoadOptions) -> WebModel:
    """Write the version's float32 and float16 web copies (content-addressed) and describe them."""
    if spec.input.kind == "encoded":
        raise NotForTheBrowser("its input is encoded JPEG bytes, which ONNX has no decoder for")
    if spec.tensors_only:
        raise NotForTheBrowser("it takes named tensors, not one image crop")
    described = spec  # what the ONNX model's tensors are called: a SavedModel's frozen view
    if spec.is_onnx:
        model, source = spec.graph_path.read_bytes(), "model.onnx, as exported"
    else:
        try:
            if spec.is_saved_model:  # its signature frozen, as the ONNX Runtime backend serves it
                from service.serving import savedmodel
                from service.serving.backends import saved_model

                described = savedmodel.frozen_view(spec)
                servable = onnx_conversion.load_verified(described, lambda: saved_model.frozen_graph(spec),
                                                         options, check_rows(described),
                                                         identity=savedmodel.identity(spec))
            else:
                servable = onnx_conversion.load_verified(spec, spec.graph_path.read_bytes(), options, check_rows(spec))
        except onnx_conversion.Unverified as refusal:
            raise NotForTheBrowser(str(refusal)) from None
        model, source = servable.model, servable.reason
        servable.close()
    full = onnx_runtime.load(described, model, 1, source)
    half_model = half_weights(model)
    half = onnx_runtime.load(described, half_model, 1, f"{source}, float16 weights")
    rows = check_rows(spec)
    # The cost a user sees: the largest change of a shown score (after model.toml's softmax).
    difference = float(np.max(np.abs(probabilities(half.run(rows), spec.softmax)
                                     - probabilities(full.run(rows), spec.softmax))))
    directory = _directory(options)
    files = {"float32": _write(directory, model, 0.0), "float16": _write(directory, half_model, difference)}
    return WebModel(spec=spec, input_name=full.input_name,
                    output_name=full.output_name, directory=directory, files=files, source=source)


def half_weights(model: bytes) -> bytes:
    """The model with every large float32 initializer stored as float16 and cast back on load."""
    proto = onnx.load_from_string(model)
    graph = proto.graph
    fed = {value.name for value in graph.input}  # an initializer that is also an input may be overridden
    casts = []
    for initializer in graph.initializer:
        if initializer.data_type != TensorProto.FLOAT or initializer.name in fed:
            continue
        values = numpy_helper.to_array(initializer)
        if values.size < HALF_MIN_ELEMENTS:
            continue
        name = initializer.name
        halved = numpy_helper.from_array(np.clip(values, -HALF_MAX, HALF_MAX).astype(np.float16), f"{name}__half")
        initializer.CopyFrom(halved)
        casts.append(helper.make_node("Cast", [halved.name], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    # Nodes are kept in topological order: the casts come before everything that reads their outputs.
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return proto.SerializeToString()


_temporary: Path | None = None
_temporary_lock = threading.Lock()


def _directory(options: LoadOptions) -> Path:
    """Beside the conversion cache (shared by restarts and replicas); without one, a directory of this process."""
    global _temporary
    if options.onnx_cache is not None:
        directory = Path(options.onnx_cache) / "web"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return directory
        except OSError:
            pass  # an unwritable cache: only slower, as for conversions
    with _temporary_lock:
        if _temporary is None:
            _temporary = Path(tempfile.mkdtemp(prefix="pinpoint-web-"))
        return _temporary


def _write(directory: Path, model: bytes, difference: float) -> WebFile:
    digest = hashlib.sha256(model).hexdigest()
    name = f"{digest[:24]}.onnx"  # its content's name: a new version or variant is a new URL
    target = directory / name
    if not target.exists():
        temporary = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        temporary.write_bytes(model)
        os.replace(temporary, target)
    return WebFile(name=name, size=len(model), sha256=digest, max_difference=difference)
