"""`pinpoint inspect GRAPH.pb`: what a frozen GraphDef takes and gives, as `saved_model_cli show` does
for SavedModels: its placeholders, its candidate outputs (ops nobody consumes), their dtypes and
shapes. `--config` prints a starting model.toml for it (docs/models.md), checked against
service.serving.repository's reader before it is printed.

Works on TF1-era graphs: the GraphDef is imported with tf.compat.v1 into a graph of its own, so shapes
come from TensorFlow's shape inference; a graph whose ops this TensorFlow no longer has is still
described, from its nodes' attributes only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
from collections import Counter
from pathlib import Path

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


class ConfigGuessError(ValueError):
    """No starting model.toml can be guessed for this graph (or for the tensors asked for)."""


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

def read_graph_def(path: str | Path):
    """The GraphDef in `path` (binary, or text format .pbtxt); NotAGraph with one line of why."""
    return _read(path)[0]


def _read(path: str | Path):
    """(GraphDef, whether it was in text format)."""
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
            graph, import_error = None, _first_line(error)

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
    graph_def, text = _read(path)
    return describe(graph_def, path, text_format=text)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.split(". ")[0]  # TensorFlow's messages go on with advice


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


# --- a starting model.toml -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ConfigGuess:
    toml: str
    input: Placeholder
    output: TensorInfo
    kind: str
    classes: int | None
    notes: tuple[str, ...]                     # what was guessed and should be checked


def flat_geometry(length: int) -> tuple[int, int, int]:
    """A flat input's length as height, width, channels: 784 -> 28x28x1, 3072 -> 32x32x3."""
    for channels in (1, 3):
        if length % channels == 0:
            side = math.isqrt(length // channels)
            if side * side * channels == length:
                return side, side, channels
    return 1, length, 1


def guess_config(description: GraphDescription, input_name: str | None = None,
                 output_name: str | None = None) -> ConfigGuess:
    """A model.toml for the graph: the input kind from the placeholder's dtype and rank, the size from
    its shape (or from a resize after it), the output from the best candidate."""
    placeholder = _pick_input(description, input_name)
    output = _pick_output(description, output_name)
    notes: list[str] = []
    shape, dtype = placeholder.shape, placeholder.dtype
    lines_input = [f'tensor = "{placeholder.name}"']
    if dtype == "string":
        kind = "encoded"
        height, width = description.image_size or (224, 224)
        channels = description.decode_channels if description.decode_channels in (1, 3) else 3
        if description.image_size is None:
            notes.append("no resize to a fixed size found after the input: height and width are a guess (224)")
        lines_input += [f'kind = "{kind}"', f"height = {height}", f"width = {width}", f"channels = {channels}",
                        "jpeg_quality = 95"]
    elif dtype in ("float32", "uint8") or dtype in FLOATS:
        if dtype != "float32" and dtype != "uint8":
            raise ConfigGuessError(f"input {placeholder.name} is {dtype}: Pinpoint feeds float32 or uint8")
        if shape is not None and len(shape) == 4:
            kind = "image"
            height, width, channels = shape[1], shape[2], shape[3]
            if channels not in (1, 3) and shape[1] in (1, 3):
                raise ConfigGuessError(f"input {placeholder.name} {placeholder.shape_text()} looks channels-first "
                                       "(NCHW); Pinpoint feeds NHWC")
            if channels is None:
                channels = 3
                notes.append("the input's channels are not fixed in the graph: 3 (RGB) assumed")
            if channels not in (1, 3):
                raise ConfigGuessError(f"input {placeholder.name} has {channels} channels: Pinpoint feeds 1 or 3")
            if height is None or width is None:
                height, width = description.image_size or (224, 224)
                found = "from the resize after it" if description.image_size else "is a guess"
                notes.append(f"the input's height and width are not fixed in the graph: {height}x{width} {found}")
        elif shape is not None and len(shape) == 2:
            kind = "flat"
            if shape[1] is None:
                raise ConfigGuessError(f"input {placeholder.name} {placeholder.shape_text()}: a flat input needs a "
                                       "fixed length")
            height, width, channels = flat_geometry(shape[1])
            if (height, width, channels) == (1, shape[1], 1):
                notes.append(f"{shape[1]} values are not a square image: fed as a 1x{shape[1]} greyscale strip")
            else:
                notes.append(f"{shape[1]} values read as a {height}x{width}x{channels} image, row-major HWC")
        else:
            raise ConfigGuessError(f"input {placeholder.name} {placeholder.shape_text()}: no input kind fits "
                                   "(4-D image, 2-D flat, or a string)")
        scale = "0.00392156862745098" if dtype == "float32" else "1.0"
        lines_input += [f'kind = "{kind}"', f"height = {height}", f"width = {width}", f"channels = {channels}",
                        f'dtype = "{dtype}"']
        if dtype == "float32":
            lines_input += [f"scale = {scale}  # value = pixel * scale + offset: CHECK", "offset = 0.0"]
            notes.append("normalisation guessed (pixels scaled to 0..1): set scale/offset or mean/std to what "
                         "the model was trained on")
    else:
        raise ConfigGuessError(f"input {placeholder.name} is {dtype}: no input kind fits (float32, uint8, string)")

    classes = output.shape[-1] if output.shape else None
    softmax = output.computes not in ("Softmax", "Sigmoid")
    if softmax:
        notes.append(f"{output.name} does not come from a Softmax: softmax = true applies one (set false if it "
                     "already holds probabilities)")
    if description.text_format:
        notes.append("the graph is in text format: serve it as a binary GraphDef (SerializeToString)")
    others = [p.name for p in description.placeholders if p.name != placeholder.name and not p.has_default]
    if others:
        notes.append(f"other placeholders ({', '.join(others)}) are not fed: the graph must not need them")
    labels = f"{classes} lines" if classes else "one line per output class"
    toml = "\n".join([
        f"# A starting model.toml for {Path(description.path).name or 'the graph'}, written by `pinpoint inspect "
        "--config`.",
        "# The format is docs/models.md. Guessed, to check:" if notes else "# The format is docs/models.md.",
        *(f"# - {note}" for note in notes),
        'graph = "frozen_graph.pb"',
        f"# labels = \"<name>\"        # labels/<name>.txt, {labels}; defaults to the model's directory name",
        "",
        "[input]",
        *lines_input,
        "",
        "[output]",
        f'tensor = "{output.name}"' + (f"  # [batch, {classes}]" if classes else ""),
        f"softmax = {'true' if softmax else 'false'}",
        "",
        "[crop]",
        "fraction = 0.15  # the window around the point: 15% of the image's width and height",
        "min_px = 24",
        "keep_aspect = true",
        'resize = "bilinear"',
        "",
    ])
    return ConfigGuess(toml=toml, input=placeholder, output=output, kind=kind, classes=classes, notes=tuple(notes))


def _pick_input(description: GraphDescription, name: str | None) -> Placeholder:
    if name is not None:
        wanted = name if ":" in name else f"{name}:0"
        for placeholder in description.placeholders:
            if placeholder.name == wanted:
                return placeholder
        raise ConfigGuessError(f"no placeholder {wanted} (placeholders: "
                               f"{', '.join(p.name for p in description.placeholders) or 'none'})")
    required = [p for p in description.placeholders if not p.has_default]
    if not required:
        raise ConfigGuessError("the graph has no placeholder to feed")

    def fits(p: Placeholder) -> bool:
        return p.dtype == "string" or (p.dtype in ("float32", "uint8") and p.rank in (2, 4))
    return next((p for p in required if fits(p)), required[0])


def _pick_output(description: GraphDescription, name: str | None) -> TensorInfo:
    if name is not None:
        wanted = name if ":" in name else f"{name}:0"
        for tensor in description.outputs:
            if tensor.name == wanted:
                return tensor
        raise ConfigGuessError(f"{wanted} is not a candidate output (candidates: "
                               f"{', '.join(t.name for t in description.outputs) or 'none'})")
    if not description.outputs:
        raise ConfigGuessError("the graph has no candidate output")
    return description.outputs[0]


def check_config(toml: str, graph_path: str | Path, classes: int | None):
    """Read the config the way the server does (service.serving.repository.read_spec), beside the graph and a
    labels file of the right length; returns the ModelSpec or raises ModelConfigError."""
    from service.serving import repository

    with tempfile.TemporaryDirectory(prefix="pinpoint-inspect-") as tmp:
        version_dir = Path(tmp, "models", "inspected", "1")
        version_dir.mkdir(parents=True)
        (version_dir / "model.toml").write_text(toml, encoding="utf-8")
        (version_dir / "frozen_graph.pb").symlink_to(Path(graph_path).resolve())
        labels_dir = Path(tmp, "labels")
        labels_dir.mkdir()
        (labels_dir / "inspected.txt").write_text("".join(f"class_{i}\n" for i in range(classes or 2)))
        return repository.read_spec("inspected", 1, version_dir, labels_dir)


# --- printing --------------------------------------------------------------------------------------

def render(description: GraphDescription) -> str:
    width = max([len(t.name) for t in (*description.placeholders, *description.outputs)] + [10])
    lines = [f"GraphDef {description.path}: {description.size_bytes:,} bytes, {description.node_count:,} nodes, "
             f"producer version {description.producer}"]
    if description.weights:
        lines.append(f"weights: {description.weights:,} float values in constants ({description.weight_bytes:,} bytes)")
    if description.variables:
        lines.append(f"NOT FROZEN: {len(description.variables)} variable op(s) ({', '.join(description.variables[:3])}"
                     f"{', ...' if len(description.variables) > 3 else ''}): Pinpoint serves frozen graphs")
    if description.text_format:
        lines.append("text format: Pinpoint serves binary GraphDefs (write it with SerializeToString)")
    if not description.shape_inference:
        lines.append(f"shape inference unavailable ({description.import_error}): shapes from node attributes")
    lines += ["", "inputs (placeholders):"]
    for p in description.placeholders:
        extra = "  (with default: optional)" if p.has_default else ""
        lines.append(f"  {p.name:<{width}}  dtype: {p.dtype:<8} shape: {p.shape_text()}{extra}")
    if not description.placeholders:
        lines.append("  (none)")
    lines += ["", "candidate outputs (ops nobody consumes, most likely first):"]
    for t in description.outputs:
        behind = f" <- {t.computes}" if t.computes and t.computes != t.op else ""
        lines.append(f"  {t.name:<{width}}  dtype: {t.dtype:<8} shape: {t.shape_text():<14} op: {t.op}{behind}")
    if not description.outputs:
        lines.append("  (none)")
    ops = ", ".join(f"{op} {count}" for op, count in list(description.op_counts.items())[:8])
    lines += ["", f"ops: {ops}{', ...' if len(description.op_counts) > 8 else ''}"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinpoint inspect",
        description="Describe a frozen GraphDef: placeholders, candidate outputs, dtypes and shapes.")
    parser.add_argument("graph", help="a frozen GraphDef (.pb, or text format .pbtxt)")
    parser.add_argument("--config", action="store_true", help="print a starting model.toml for the graph instead")
    parser.add_argument("--input", help="the placeholder to feed (with --config; default: guessed)")
    parser.add_argument("--output", help="the output tensor (with --config; default: the best candidate)")
    parser.add_argument("--json", action="store_true", help="the description as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from service.quiet import import_tensorflow

    import_tensorflow()  # without its C++ notices
    try:
        description = inspect_file(args.graph)
    except NotAGraph as error:
        print(f"pinpoint inspect: {error}", file=sys.stderr)
        return 2
    if not args.config:
        print(json.dumps(description.to_json(), indent=2) if args.json else render(description))
        return 0
    from service.serving.repository import ModelConfigError

    try:
        guess = guess_config(description, args.input, args.output)
        check_config(guess.toml, args.graph, guess.classes)
    except ConfigGuessError as error:
        print(f"pinpoint inspect: {error}", file=sys.stderr)
        return 2
    except ModelConfigError as error:  # a bug here, not the user's: say so plainly
        print(f"pinpoint inspect: the guessed model.toml does not read back ({error})", file=sys.stderr)
        return 1
    print(guess.toml, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
