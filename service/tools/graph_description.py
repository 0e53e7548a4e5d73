"""What a frozen GraphDef takes and gives, as `saved_model_cli show` says it for SavedModels: its
placeholders, its candidate outputs (ops nobody consumes, the likeliest answer first), their dtypes and
shapes, its weights, and what a graph with an encoded or size-free input resizes or decodes to.

Works on TF1-era graphs: the GraphDef is imported with tf.compat.v1 into a graph of its own, so shapes
come from TensorFlow's shape inference; a graph whose ops this TensorFlow no longer has is still
described, from its nodes' attributes only. A file that is not a frozen GraphDef (a SavedModel, a Keras
file) is refused with what to do with it instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from pathlib import Path

from service.errors import first_line

# Ops that are never a model's answer, even when nothing consumes them.
NOT_OUTPUTS = frozenset({
    "NoOp", "Const", "Assert", "Print", "PrintV2", "Placeholder", "PlaceholderWithDefault",
    "VariableV2", "Variable", "VarHandleOp", "VarIsInitializedOp", "IsVariableInitialized",
    "Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "ShardedFilename", "ShardedFilespec", "MergeSummary", "WriteSummary", "FlushSummaryWriter",
})
NOT_OUTPUT_PREFIXES = ("Apply", "ResourceApply", "SparseApply", "ResourceSparseApply")
NOT_OUTPUT_SUFFIXES = ("Summary",)
PLACEHOLDERS = ("Placeholder", "PlaceholderWithDefault")
VARIABLES = ("VariableV2", "Variable", "VarHandleOp")
RESIZES = ("ResizeBilinear", "ResizeBicubic", "ResizeNearestNeighbor", "ResizeArea")
DECODERS = ("DecodeJpeg", "DecodeImage", "DecodePng", "DecodeAndCropJpeg")
PASS_THROUGH = ("Identity", "IdentityN", "StopGradient", "Snapshot")
FLOATS = ("float16", "bfloat16", "float32", "float64")
OUTPUT_WORDS = ("prob", "softmax", "final_result", "prediction", "output", "logit", "score")


class NotAGraph(ValueError):
    """The file is not a GraphDef (or one with nothing in it)."""



@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str                                  # "x:0"
    op: str                                    # the producing op's type, "Placeholder", "Softmax"
    dtype: str                                 # "float32", "string", ... ("unknown" when not inferable)
    shape: tuple[int | None, ...] | None       # None: unknown rank; None in a dimension: unknown size
    computes: str = ""                         # the op behind Identity-like ops (Keras: Identity <- Softmax)

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def shape_text(self) -> str:
        """As saved_model_cli prints shapes: (-1, 784), () for a scalar, unknown_rank."""
        if self.shape is None:
            return "unknown_rank"
        dims = ", ".join("-1" if d is None else str(d) for d in self.shape)
        return f"({dims},)" if len(self.shape) == 1 else f"({dims})"


@dataclasses.dataclass(frozen=True)
class Placeholder(TensorInfo):
    has_default: bool = False                  # PlaceholderWithDefault: feeding it is optional


@dataclasses.dataclass(frozen=True)
class GraphDescription:
    path: str
    size_bytes: int
    node_count: int
    producer: int                              # GraphDef versions.producer (TF1-era graphs: small numbers)
    op_counts: dict[str, int]
    placeholders: tuple[Placeholder, ...]
    outputs: tuple[TensorInfo, ...]            # candidate outputs, best guess first
    weights: int                               # values in float Const nodes (the frozen weights)
    weight_bytes: int
    variables: tuple[str, ...]                 # variable ops left: the graph is not frozen
    shape_inference: bool                      # False: the graph did not import; shapes from attributes
    import_error: str | None
    text_format: bool                          # a .pbtxt: the server reads binary GraphDefs only
    image_size: tuple[int, int] | None         # a resize to a constant size after the input, if found
    decode_channels: int | None                # channels= of the DecodeJpeg after a string input

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# --- reading ---------------------------------------------------------------------------------------

def read_graph_file(path: str | Path):
    """(GraphDef, whether it was in text format); NotAGraph with one line of why."""
    import tensorflow as tf
    from google.protobuf import message

    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            raise NotAGraph(f"{path} is a SavedModel directory, not a frozen GraphDef: it serves as it is from "
                            "models/NAME/VERSION/ (docs/models.md, \"Serving a SavedModel\"), or `pinpoint convert "
                            f"{path} --name NAME` freezes it into a new version of the repository (and reports its "
                            "input and output)")
        raise NotAGraph(f"{path} is a directory, not a GraphDef file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise NotAGraph(f"cannot read {path}: {error.strerror or error}") from None
    if path.name == "saved_model.pb":
        raise NotAGraph(f"{path} is a SavedModel's saved_model.pb, not a frozen GraphDef: its directory serves "
                        "as it is from models/NAME/VERSION/, or `pinpoint convert "
                        f"{path.parent} --name NAME` freezes the SavedModel directory into a new version")
    if path.suffix.lower() in (".keras", ".h5", ".hdf5") or data[:4] == b"PK\x03\x04" \
            or data[:8] == b"\x89HDF\r\n\x1a\n":
        raise NotAGraph(f"{path} is a Keras model file (.keras or .h5), not a frozen GraphDef: `pinpoint convert "
                        f"{path} --name NAME` freezes it into a new version of the repository")
    graph_def, text = tf.compat.v1.GraphDef(), False
    try:
        graph_def.ParseFromString(data)
    except message.DecodeError:
        graph_def = _text_graph_def(data)
        if graph_def is None:
            raise NotAGraph(f"{path} is not a TensorFlow GraphDef (it does not parse as one)") from None
        text = True
    if not graph_def.node:
        raise NotAGraph(f"{path} is not a TensorFlow GraphDef (no nodes in it)")
    if path.name == "saved_model.pb" or any(not node.op for node in graph_def.node):
        raise NotAGraph(f"{path} is not a TensorFlow GraphDef (a SavedModel's saved_model.pb? "
                        "see `saved_model_cli show`, or `pinpoint convert` its directory)")
    return graph_def, text


def _text_graph_def(data: bytes):
    import tensorflow as tf
    from google.protobuf import text_format

    try:
        text = data.decode("utf-8")
        return text_format.Parse(text, tf.compat.v1.GraphDef())
    except (UnicodeDecodeError, text_format.ParseError):
        return None


# --- describing ------------------------------------------------------------------------------------

def describe(graph_def, path: str | Path = "", text_format: bool = False) -> GraphDescription:
    """Placeholders, candidate outputs, dtypes and shapes of a GraphDef."""
    import tensorflow as tf

    consumed: set[str] = set()
    for node in graph_def.node:
        for name in node.input:
            if not name.startswith("^"):        # a control input does not consume a value
                consumed.add(name.split(":")[0])
    nodes = {node.name: node for node in graph_def.node}
    graph, import_error = tf.Graph(), None
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(graph_def, name="")
        except (ValueError, TypeError, tf.errors.OpError) as error:
            graph, import_error = None, first_line(error, None).split(". ")[0]  # TensorFlow's go on with advice

    placeholders = tuple(_placeholder(node, graph) for node in graph_def.node if node.op in PLACEHOLDERS)
    outputs = []
    for node in graph_def.node:
        if node.name in consumed or _not_output(node.op):
            continue
        outputs.extend(dataclasses.replace(tensor, computes=_resolves_to(tensor, nodes))
                       for tensor in _outputs(node, graph))
    outputs.sort(key=_output_rank, reverse=True)

    weights = weight_bytes = 0
    for node in graph_def.node:
        if node.op == "Const" and node.attr["dtype"].type in (tf.float32.as_datatype_enum,
                                                               tf.float16.as_datatype_enum,
                                                               tf.float64.as_datatype_enum,
                                                               tf.bfloat16.as_datatype_enum):
            count = math.prod(d.size for d in node.attr["value"].tensor.tensor_shape.dim)
            weights += count
            weight_bytes += count * tf.as_dtype(node.attr["dtype"].type).size
    image_size, channels = _after_input(graph, placeholders)
    return GraphDescription(
        path=str(path), size_bytes=graph_def.ByteSize(), node_count=len(graph_def.node),
        producer=graph_def.versions.producer, op_counts=dict(Counter(n.op for n in graph_def.node).most_common()),
        placeholders=placeholders, outputs=tuple(outputs), weights=weights, weight_bytes=weight_bytes,
        variables=tuple(node.name for node in graph_def.node if node.op in VARIABLES),
        shape_inference=graph is not None, import_error=import_error, text_format=text_format,
        image_size=image_size, decode_channels=channels)


def inspect_file(path: str | Path) -> GraphDescription:
    graph_def, text = read_graph_file(path)
    return describe(graph_def, path, text_format=text)



def _not_output(op: str) -> bool:
    return op in NOT_OUTPUTS or op.startswith(NOT_OUTPUT_PREFIXES) or op.endswith(NOT_OUTPUT_SUFFIXES)


def _placeholder(node, graph) -> Placeholder:
    info = _outputs(node, graph)[0]
    return Placeholder(name=info.name, op=info.op, dtype=info.dtype, shape=info.shape,
                       has_default=node.op == "PlaceholderWithDefault")


def _outputs(node, graph) -> list[TensorInfo]:
    """The node's output tensors, from the imported graph when there is one, else from attributes."""
    if graph is not None:
        op = graph.get_operation_by_name(node.name)
        return [TensorInfo(name=t.name, op=op.type, dtype=t.dtype.name, shape=_shape(t.shape)) for t in op.outputs]
    return [TensorInfo(name=f"{node.name}:0", op=node.op, dtype=_attr_dtype(node), shape=_attr_shape(node))]


def _shape(shape) -> tuple[int | None, ...] | None:
    return None if shape.rank is None else tuple(shape.as_list())


def _attr_dtype(node) -> str:
    import tensorflow as tf

    for key in ("dtype", "T", "out_type", "DstT"):
        if key in node.attr and node.attr[key].type:
            return tf.as_dtype(node.attr[key].type).name
    return "unknown"


def _attr_shape(node):
    import tensorflow as tf

    for key in ("shape", "_output_shapes"):
        if key in node.attr:
            value = node.attr[key]
            proto = value.shape if key == "shape" else (value.list.shape[0] if value.list.shape else None)
            if proto is not None:
                return _shape(tf.TensorShape(proto))
    return None


def _resolves_to(tensor: TensorInfo, nodes: dict) -> str:
    """The op type behind a chain of Identity-like ops (Keras names `Identity` what is a Softmax)."""
    node = nodes.get(tensor.name.split(":")[0])
    for _ in range(16):
        if node is None or node.op not in PASS_THROUGH or not node.input:
            break
        node = nodes.get(node.input[0].split(":")[0].lstrip("^"))
    return node.op if node is not None else tensor.op


def _output_rank(tensor: TensorInfo) -> tuple:
    """How much a tensor looks like a classifier's answer: float, [batch, classes], a softmax, a name."""
    is_float = tensor.dtype in FLOATS
    shaped = tensor.rank in (1, 2) and tensor.shape[-1] is not None and tensor.shape[-1] > 1
    probabilities = tensor.computes in ("Softmax", "Sigmoid")
    named = any(word in tensor.name.lower() for word in OUTPUT_WORDS)
    return (is_float, shaped, probabilities, named, tensor.rank == 2)


def _after_input(graph, placeholders) -> tuple[tuple[int, int] | None, int | None]:
    """Walk forward from the inputs for a resize to a constant size and an image decoder's channels=,
    which say what a graph with an encoded or size-free input expects (retrain.py: 299x299, 3)."""
    if graph is None:
        return None, None
    from tensorflow.python.framework import tensor_util

    size = channels = None
    seen, frontier = set(), [graph.get_operation_by_name(p.name.split(":")[0]) for p in placeholders
                             if not p.has_default]
    while frontier and len(seen) < 500:
        op = frontier.pop(0)
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in DECODERS and channels is None:
            channels = op.get_attr("channels") or None
        if op.type in RESIZES and size is None and len(op.inputs) > 1 and op.inputs[1].op.type == "Const":
            value = tensor_util.MakeNdarray(op.inputs[1].op.get_attr("value")).tolist()
            if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
                size = (value[0], value[1])
        if size is not None and channels is not None:
            break
        frontier.extend(consumer for output in op.outputs for consumer in output.consumers())
    return size, channels
