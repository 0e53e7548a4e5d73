"""`pinpoint convert MODEL --name N`: a Keras model (.keras, .h5) or a SavedModel directory -> a new
version of model N in the repository: frozen_graph.pb, model.toml and labels (docs/models.md).

The model is traced as a tf.function with one input `input:0` and one output `probs:0`, and its
variables are folded into constants (convert_variables_to_constants_v2). With --float16, the large
float32 constants are stored as float16, each behind a Cast back to float32, so the file is about
half the size and the graph still takes and gives float32.

The input normalisation (model.toml's `scale`) is 1/255 unless the model rescales its input itself: a
Keras `Rescaling` or `Normalization` layer before its first learning layer, found in a .keras/.h5 model's
layers and in a SavedModel's signature (`model.export()`, `tf.saved_model.save()`), gives scale 1 (raw
0..255 pixels). The check then runs the served pipeline on real pixels: windows cut around points of
photographs (scikit-image's sample photos, or `--images DIR`) the way the server cuts them, normalised
as the written model.toml says, through the published graph, against the source model; and it warns
when the model's answers barely move between those photos while they do on raw pixels (an input scaled
twice answers nearly the same scores everywhere).

The version is written in a hidden temporary directory beside its target and renamed into place, so
a server polling the repository sees no version or a complete one; an existing version is never
overwritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

INPUT_NAME = "input"
OUTPUT_NAME = "probs"
FLOAT16_MIN_ELEMENTS = 128      # smaller float constants (biases, scalars) stay float32: nothing to gain
DEFAULT_SCALE = 1 / 255


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


@dataclasses.dataclass(frozen=True)
class ConvertReport:
    name: str
    version: int
    version_dir: Path
    graph_path: Path
    labels_path: Path
    labels_written: bool
    kind: str
    input_shape: tuple[int | None, ...]
    classes: int
    softmax: bool
    scale: float
    offset: float
    size_bytes: int                 # the published frozen_graph.pb
    float32_size_bytes: int         # the same graph with float32 weights
    float16: bool
    halved_constants: int           # Const nodes stored as float16
    samples: int
    seed: int
    max_abs_diff: float             # published graph vs source model, on the samples
    float32_max_abs_diff: float     # the float32 frozen graph vs source (the freeze alone)
    top1_agreement: float           # published graph vs source model, on the samples
    warnings: tuple[str, ...]
    inputs: str = "random pixels"   # what the samples were cut from
    spread: float = 0.0             # how far the source's answers move between the samples (mean L1 from their mean)

    def to_json(self) -> dict:
        return {key: (str(value) if isinstance(value, Path) else value)
                for key, value in dataclasses.asdict(self).items()}


# --- loading and freezing --------------------------------------------------------------------------

def load_source(path: str | Path, output_key: str | None = None) -> Source:
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ConvertError(f"{path} is a directory without saved_model.pb: not a SavedModel")
        return _saved_model(path, output_key)
    if not path.is_file():
        raise ConvertError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ConvertError(f"{path}: expected a .keras or .h5 file, or a SavedModel directory")
    import keras
    import tensorflow as tf

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for files it cannot read
        raise ConvertError(f"{path}: Keras cannot load it ({_first_line(error)})") from None
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
    return Source(path=path, format="h5" if suffix != ".keras" else "keras",
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
        raise ConvertError(f"{path}: cannot load the SavedModel ({_first_line(error)})") from None
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
                               f"({_first_line(error)})") from None
        return tf.compat.v1.graph_util.extract_sub_graph(frozen.graph.as_graph_def(), [OUTPUT_NAME])


def halve_weights(graph_def, min_elements: int = FLOAT16_MIN_ELEMENTS):
    """A copy of graph_def whose float32 Const nodes of at least min_elements values hold float16,
    each read through a Cast to float32 under the Const's old name (so no consumer changes).
    Constants with values float16 cannot hold (beyond +-65504) stay float32.
    Returns (graph_def, the number of constants halved)."""
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util

    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    del result.node[:]
    names = {node.name for node in graph_def.node}
    halved = 0
    for node in graph_def.node:
        if node.op != "Const" or node.attr["dtype"].type != tf.float32.as_datatype_enum:
            result.node.append(node)
            continue
        values = tensor_util.MakeNdarray(node.attr["value"].tensor)
        if values.size < min_elements or not np.all(np.abs(values) <= np.finfo(np.float16).max):
            result.node.append(node)
            continue
        half_name = f"{node.name}/float16"
        while half_name in names:
            half_name += "_"
        names.add(half_name)
        half = result.node.add()
        half.name, half.op, half.device = half_name, "Const", node.device
        half.attr["dtype"].type = tf.float16.as_datatype_enum
        half.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(values.astype(np.float16)))
        cast = result.node.add()
        cast.name, cast.op, cast.device = node.name, "Cast", node.device
        cast.input.append(half_name)
        cast.input.extend(name for name in node.input if name.startswith("^"))  # keep control inputs
        cast.attr["SrcT"].type = tf.float16.as_datatype_enum
        cast.attr["DstT"].type = tf.float32.as_datatype_enum
        cast.attr["Truncate"].b = False
        halved += 1
    return result, halved


def run_graph(graph_def, inputs: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return np.asarray(session.run(f"{OUTPUT_NAME}:0", {f"{INPUT_NAME}:0": inputs}), dtype=np.float32)


# --- the model.toml --------------------------------------------------------------------------------

def model_toml(*, source: str, kind: str, height: int, width: int, channels: int, dtype: str, scale: float,
               offset: float, softmax: bool, labels: str, fraction: float, min_px: int) -> str:
    normalise = [f"scale = {scale!r}", f"offset = {offset!r}"] if dtype == "float32" else []
    return "\n".join([
        f"# Written by `pinpoint convert` from {source}; the format is docs/models.md.",
        'graph = "frozen_graph.pb"',
        f'labels = "{labels}"',
        "",
        "[input]",
        f'tensor = "{INPUT_NAME}:0"',
        f'kind = "{kind}"',
        f"height = {height}",
        f"width = {width}",
        f"channels = {channels}",
        f'dtype = "{dtype}"',
        *normalise,
        "",
        "[output]",
        f'tensor = "{OUTPUT_NAME}:0"',
        f"softmax = {'true' if softmax else 'false'}",
        "",
        "[crop]",
        f"fraction = {fraction!r}",
        f"min_px = {min_px}",
        "keep_aspect = true",
        'resize = "bilinear"',
        "",
    ])


def _geometry(input_shape, size) -> tuple[str, tuple[int | None, ...], int, int, int]:
    """kind, the shape to trace (batch None), height, width, channels."""
    from service.tools.inspect_graph import flat_geometry

    if len(input_shape) == 4:
        _, height, width, channels = input_shape
        if size is not None:
            height, width = size
        if height is None or width is None:
            raise ConvertError(f"the model's input {_shape_text(input_shape)} has no fixed size: give --size")
        if channels not in (1, 3):
            raise ConvertError(f"the model's input {_shape_text(input_shape)} has {channels} channels: Pinpoint "
                               "feeds 1 (greyscale) or 3 (RGB), NHWC")
        return "image", (None, height, width, channels), height, width, channels
    if len(input_shape) == 2 and input_shape[1] is not None:
        height, width, channels = flat_geometry(input_shape[1])
        return "flat", (None, input_shape[1]), height, width, channels
    raise ConvertError(f"the model's input {_shape_text(input_shape)} fits no Pinpoint input kind "
                       "([batch, height, width, channels] or [batch, values])")


def _shape_text(shape) -> str:
    return "(" + ", ".join("-1" if d is None else str(d) for d in shape) + ")"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- the check's inputs: windows of real photographs -------------------------------------------------

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")
NEAR_CONSTANT = 0.02    # answers that move less than this between photos (mean L1 from their mean) barely move


def _photos(images: str | Path | None):
    """(name, RGB PIL image) pairs: the files in `images`, else scikit-image's sample photographs."""
    from PIL import Image

    if images is not None:
        folder = Path(images)
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        found = []
        for file in files:
            try:
                with Image.open(file) as image:
                    found.append((file.name, image.convert("RGB")))
            except (OSError, ValueError):
                continue  # not an image
        if not found:
            raise ConvertError(f"--images {folder}: no image files in it")
        return found, f"photos in {folder}"
    try:
        from skimage import data
    except ImportError:
        return [], ""
    found = []
    for name in SAMPLE_PHOTOS:
        try:
            pixels = getattr(data, name)()
        except Exception:  # a sample that needs a download (pooch) is skipped
            continue
        found.append((name, Image.fromarray(pixels).convert("RGB")))
    return found, "scikit-image's sample photos"


def sample_crops(height: int, width: int, channels: int, samples: int, seed: int, fraction: float, min_px: int,
                 images: str | Path | None = None) -> tuple[np.ndarray, str]:
    """uint8 [samples, height, width, channels]: windows around seeded points of real photographs, cut
    and resized by the server's own code (service/classify/imaging.py), and what they were cut from. Random
    pixels only when no photograph is at hand (scikit-image not installed and no --images)."""
    from service.classify.imaging import CropSpec, DecodedImage, crop

    rng = np.random.default_rng(seed)
    photos, origin = _photos(images)
    if not photos:
        return rng.integers(0, 256, size=(samples, height, width, channels), dtype=np.uint8), "random pixels"
    spec = CropSpec(width=width, height=height, channels=channels, fraction=fraction, min_px=min_px)
    crops = []
    for i in range(samples):
        _, rgb = photos[i % len(photos)]
        image = DecodedImage(rgb=rgb, format="PNG", width=rgb.width, height=rgb.height)
        crops.append(crop(image, spec, rng.uniform(0, rgb.width), rng.uniform(0, rgb.height)))
    return np.stack(crops), f"windows of {origin} ({len(photos)})"


def spread(answers: np.ndarray) -> float:
    """How far answers move between inputs: the mean L1 distance of each from their mean."""
    answers = answers.reshape(len(answers), -1)
    return float(np.mean(np.abs(answers - answers.mean(axis=0)).sum(axis=1)))


# --- publishing ------------------------------------------------------------------------------------

def next_version(model_dir: Path) -> int:
    existing = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] \
        if model_dir.is_dir() else []
    return max(existing, default=0) + 1


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish_labels(labels_dir: Path, labels_name: str, labels: tuple[str, ...]) -> Path:
    """labels/<labels_name>.txt, written beside itself and renamed into place."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    path = labels_dir / f"{labels_name}.txt"
    handle, tmp = tempfile.mkstemp(prefix=f".{labels_name}.", suffix=".tmp", dir=labels_dir)
    os.close(handle)
    try:
        _write_synced(Path(tmp), "".join(f"{label}\n" for label in labels).encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _choose_labels(labels_dir: Path, name: str, version: int, classes: int, labels_file: str | None,
                   warnings: list[str]) -> tuple[str, tuple[str, ...], bool]:
    """(labels name for model.toml, labels, whether a file must be written).

    --labels FILE, else the model's existing labels file when it has one line per class, else
    label_0..N-1. A different labels list never replaces the file an older version reads: it goes to
    labels/<name>.v<version>.txt."""
    from service.serving.repository import ModelConfigError, read_labels

    existing_path = labels_dir / f"{name}.txt"
    existing = None
    if existing_path.is_file():
        try:
            existing = read_labels(existing_path)
        except ModelConfigError:
            existing = None
    if labels_file is not None:
        try:
            labels = read_labels(Path(labels_file))
        except ModelConfigError as error:
            raise ConvertError(str(error)) from None
        if len(labels) != classes:
            raise ConvertError(f"{labels_file} has {len(labels)} labels but the model has {classes} outputs")
    elif existing is not None and len(existing) == classes:
        return name, existing, False
    else:
        labels = tuple(f"label_{i}" for i in range(classes))
        warnings.append(f"no --labels: the {classes} classes are named label_0..label_{classes - 1}; "
                        f"edit labels/{name}.txt (or the file named in model.toml)")
    if existing is None:
        return name, labels, True
    if existing == labels:
        return name, labels, False
    versioned = f"{name}.v{version}"
    warnings.append(f"labels/{name}.txt differs and an existing version may read it: this version's labels are "
                    f"labels/{versioned}.txt")
    return versioned, labels, True


# --- the conversion --------------------------------------------------------------------------------

def convert(model: str | Path, name: str, *, repository: str | Path = "models", labels_dir: str | Path | None = None,
            version: int | None = None, float16: bool = False, labels_file: str | None = None,
            scale: float | None = None, offset: float | None = None, size: tuple[int, int] | None = None,
            fraction: float = 0.15, min_px: int = 24, samples: int = 32, seed: int = 0,
            output_key: str | None = None, images: str | Path | None = None) -> ConvertReport:
    from service.serving import repository as repo
    from service.tools.inspect_graph import describe
    from service.classify.preprocess import prepare

    if not repo.MODEL_NAME.match(name):
        raise ConvertError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    repository = Path(repository)
    if labels_dir is None:  # `labels` beside the repository, as Pinpoint's defaults have them
        labels_dir = (repository if repository.name not in ("", ".", "..") else repository.resolve()).parent / "labels"
    labels_dir = Path(labels_dir)
    model_dir = repository / name
    if version is None:
        version = next_version(model_dir)
    if version < 1:
        raise ConvertError(f"--version must be a positive integer, not {version}")
    target = model_dir / str(version)
    if target.exists():
        raise ConvertError(f"{target} exists: a published version is never overwritten (choose another --version)")
    if samples < 1:
        raise ConvertError("--samples must be at least 1")

    warnings: list[str] = []
    source = load_source(model, output_key)
    if source.input_dtype not in ("float32", "uint8"):
        raise ConvertError(f"the model's input is {source.input_dtype}: Pinpoint feeds float32 or uint8")
    kind, trace_shape, height, width, channels = _geometry(source.input_shape, size)
    if scale is None:
        scale = 1.0 if source.rescales else DEFAULT_SCALE
        if source.rescales:
            warnings.append(f"the model rescales its input itself ({source.rescaling}): scale 1.0 "
                            "(raw 0..255 pixels); --scale/--offset to change")
    offset = 0.0 if offset is None else offset

    float32_graph = freeze(source, trace_shape)
    description = describe(float32_graph)
    output = next((t for t in description.outputs if t.name == f"{OUTPUT_NAME}:0"), None)
    if output is None or output.rank != 2 or output.shape[1] is None:
        shape = output.shape_text() if output is not None else "missing"
        raise ConvertError(f"the model's output is {shape}: Pinpoint serves a [batch, classes] output")
    classes = output.shape[1]
    graph_def, halved = halve_weights(float32_graph) if float16 else (float32_graph, 0)
    if float16 and not halved:
        warnings.append("--float16: no float32 constant is large enough to halve")

    # Samples cut from real photographs as the server cuts windows, normalised as model.toml will say.
    spec = repo.InputSpec(tensor=f"{INPUT_NAME}:0", kind=kind, height=height, width=width, channels=channels,
                          dtype=source.input_dtype, scale=scale, offset=offset)
    crops, origin = sample_crops(height, width, channels, samples, seed, fraction, min_px, images)
    inputs = prepare(spec, crops)
    import tensorflow as tf

    expected = np.asarray(source.call(tf.constant(inputs)), dtype=np.float32).reshape(samples, -1)
    moves = spread(expected)
    if source.input_dtype == "float32" and scale != 1.0 and moves < NEAR_CONSTANT and samples > 1:
        raw = repo.InputSpec(tensor=spec.tensor, kind=kind, height=height, width=width, channels=channels,
                             dtype="float32", scale=1.0, offset=0.0)
        raw_moves = spread(np.asarray(source.call(tf.constant(prepare(raw, crops))), dtype=np.float32))
        if raw_moves > 5 * max(moves, 1e-9):
            warnings.append(
                f"on {samples} {origin}, the model's answers barely change with scale {scale:.6g} (spread "
                f"{moves:.3g}) but do on raw 0..255 pixels (spread {raw_moves:.3g}): it probably scales its "
                f"input itself, so this version would answer nearly the same scores everywhere; "
                "convert it again with --scale 1 if it does")
    frozen32 = run_graph(float32_graph, inputs).reshape(samples, -1)
    answers = run_graph(graph_def, inputs).reshape(samples, -1) if float16 else frozen32
    probabilities = bool(np.all(answers >= -1e-6) and np.allclose(answers.sum(axis=1), 1.0, atol=1e-3))
    softmax = output.computes not in ("Softmax", "Sigmoid") and not probabilities

    labels_name, labels, write_labels = _choose_labels(labels_dir, name, version, classes, labels_file, warnings)
    toml = model_toml(source=source.path.name, kind=kind, height=height, width=width, channels=channels,
                      dtype=source.input_dtype, scale=scale, offset=offset, softmax=softmax, labels=labels_name,
                      fraction=fraction, min_px=min_px)
    data = graph_def.SerializeToString()

    # Publish: labels first (a version must find them), then the version directory by one rename.
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.converting-", dir=model_dir))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the version from a server's user
        _write_synced(staging / "frozen_graph.pb", data)
        _write_synced(staging / "model.toml", toml.encode("utf-8"))
        labels_path = _publish_labels(labels_dir, labels_name, labels) if write_labels \
            else labels_dir / f"{labels_name}.txt"
        try:
            repo.read_spec(name, version, staging, labels_dir)  # read back as the server will
        except repo.ModelConfigError as error:
            raise ConvertError(f"the written model.toml does not read back ({error})") from None
        _sync_dir(staging)
        try:
            os.rename(staging, target)  # atomic; fails if the version appeared meanwhile (not empty)
        except OSError:
            raise ConvertError(f"{target} appeared meanwhile: not overwritten") from None
        _sync_dir(model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    return ConvertReport(
        name=name, version=version, version_dir=target, graph_path=target / "frozen_graph.pb",
        labels_path=labels_path, labels_written=write_labels, kind=kind, input_shape=trace_shape,
        classes=classes, softmax=softmax, scale=scale, offset=offset, size_bytes=len(data),
        float32_size_bytes=float32_graph.ByteSize(), float16=float16, halved_constants=halved, samples=samples,
        seed=seed, max_abs_diff=float(np.max(np.abs(answers - expected))),
        float32_max_abs_diff=float(np.max(np.abs(frozen32 - expected))),
        top1_agreement=float(np.mean(answers.argmax(axis=1) == expected.argmax(axis=1))),
        warnings=tuple(warnings), inputs=origin, spread=moves)


# --- the command -----------------------------------------------------------------------------------

def render(report: ConvertReport, model: str) -> str:
    lines = [f"{model} -> {report.version_dir} (model {report.name}, version {report.version})",
             f"  input    {INPUT_NAME}:0 {_shape_text(report.input_shape)}, kind {report.kind}"
             + (f", scale {report.scale:.6g} offset {report.offset:g}" if report.kind != "encoded" else ""),
             f"  output   {OUTPUT_NAME}:0 (-1, {report.classes}), softmax = {'true' if report.softmax else 'false'}",
             f"  labels   {report.labels_path}" + ("" if report.labels_written else " (already there, unchanged)")]
    if report.float16:
        lines += [f"  size     {report.size_bytes:,} bytes with float16 weights ({report.halved_constants} constants), "
                  f"{report.float32_size_bytes:,} with float32: x{report.size_bytes / report.float32_size_bytes:.2f}",
                  f"  check    {report.samples} {report.inputs} (seed {report.seed}): float16 graph vs source: max abs "
                  f"diff {report.max_abs_diff:.3g}, top-1 agreement {report.top1_agreement:.1%} "
                  f"(float32 graph vs source: {report.float32_max_abs_diff:.3g})"]
    else:
        lines += [f"  size     {report.size_bytes:,} bytes",
                  f"  check    {report.samples} {report.inputs} (seed {report.seed}), normalised as model.toml says: "
                  f"published graph vs source: max abs "
                  f"diff {report.max_abs_diff:.3g}, top-1 agreement {report.top1_agreement:.1%}"]
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give N or HEIGHTxWIDTH") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give N or HEIGHTxWIDTH")
    return parts[0], parts[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinpoint convert",
        description="Publish a Keras model (.keras, .h5) or a SavedModel directory as a new version of a "
                    "model in the repository: frozen_graph.pb, model.toml and labels.")
    parser.add_argument("model", help="a .keras or .h5 file, or a SavedModel directory")
    parser.add_argument("--name", required=True, help="the model's name in the repository")
    parser.add_argument("--version", type=int, help="the version to write (default: one more than the highest)")
    parser.add_argument("--float16", action="store_true", help="store weights in half precision (half the size)")
    parser.add_argument("--labels", dest="labels_file", help="a labels file, one per line, output order")
    parser.add_argument("--repository", help="the model repository (default: the `models` setting, the "
                                              "checkout's models/)")
    parser.add_argument("--labels-dir", dest="labels_dir",
                        help="the labels directory (default: `labels` beside the repository)")
    parser.add_argument("--scale", type=float, help="input normalisation: value = pixel * scale + offset "
                        "(default 1/255, or 1 when the model starts with a Rescaling layer)")
    parser.add_argument("--offset", type=float, help="(default 0)")
    parser.add_argument("--size", type=_size, help="N or HEIGHTxWIDTH, for a model whose input size is not fixed")
    parser.add_argument("--fraction", type=float, default=0.15, help="crop window, fraction of the image (0.15)")
    parser.add_argument("--min-px", dest="min_px", type=int, default=24, help="crop window, at least (24 px)")
    parser.add_argument("--output", dest="output_key", help="a SavedModel signature's output, when it has several")
    parser.add_argument("--samples", type=int, default=32,
                        help="windows of photographs to compare the published graph with the source on (32)")
    parser.add_argument("--images", metavar="DIR", help="photographs to cut the check's windows from (default: "
                        "scikit-image's sample photos when it is installed, else random pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from service.quiet import import_tensorflow

    import_tensorflow()  # without its C++ notices
    options = {key: value for key, value in vars(args).items() if key not in ("model", "name", "json")}
    if args.repository is None:  # the server's repository, wherever this runs from (PINPOINT_MODELS too)
        from service.config import ConfigError, load_settings

        try:
            settings = load_settings()
        except ConfigError as error:
            print(f"pinpoint convert: {error}", file=sys.stderr)
            return 2
        options["repository"] = settings.models
        options["labels_dir"] = args.labels_dir or settings.labels
    try:
        report = convert(args.model, args.name, **options)
    except ConvertError as error:
        print(f"pinpoint convert: {error}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"pinpoint convert: warning: {warning}", file=sys.stderr)
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report, args.model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
