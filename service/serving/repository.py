"""The model repository (TF Serving's "source"): finds models/<name>/<version>/model.toml (or a
SavedModel's saved_model.pb, whose signatures service/serving/savedmodel.py reads without TensorFlow) and labels.

Knows nothing of TensorFlow or ONNX Runtime: it only reads and validates configuration, so a broken
config is reported with its file name before any model is imported. The format is documented in
docs/models.md.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from service.classify.imaging import RESIZE_FILTERS, CropSpec
from service.serving import savedmodel
from service.serving.servable_id import Identified, ServableId

CONFIG_NAME = "model.toml"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
INPUT_KINDS = ("image", "flat", "encoded")
# A SavedModel without model.toml whose signature is not one image or flat input -> one output of scores
# (several inputs, several outputs, other dtypes): served as named tensors only, not by /v1/classify.
TENSORS = "tensors"
REGION_KEYS = ("input", "output", "crop", "labels")  # what a model.toml says only for /v1/classify
LAYOUTS = ("nhwc", "nchw")
BACKENDS = ("auto", "tensorflow", "onnxruntime")
GRAPH_FILES = ("frozen_graph.pb", "model.onnx")  # looked for in this order when model.toml names none


class ModelConfigError(ValueError):
    """A model directory whose config cannot be served."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    tensor: str
    kind: str
    height: int
    width: int
    channels: int
    dtype: str
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    jpeg_quality: int = 95
    layout: str = "nhwc"  # image kind: "nchw" feeds [N, C, H, W] (PyTorch's order)


@dataclasses.dataclass(frozen=True)
class ModelSpec(Identified):
    name: str
    version: int
    directory: Path
    graph_path: Path
    labels: tuple[str, ...]
    input: InputSpec
    output_tensor: str
    softmax: bool
    crop: CropSpec
    backend: str | None = None  # model.toml's `backend`; None: the server's `backend` setting
    # A SavedModel version: every signature it has (name, SignatureInfo), and the one served. Its
    # input.tensor and output_tensor are then that signature's aliases ("keras_tensor", "output_0").
    signatures: tuple[tuple[str, savedmodel.SignatureInfo], ...] = ()
    signature_name: str = ""
    configured: bool = True  # False: a SavedModel with no model.toml, described from its signature alone

    @property
    def is_onnx(self) -> bool:
        """An ONNX model (model.onnx) rather than a frozen TensorFlow GraphDef."""
        return self.graph_path.suffix == ".onnx"

    @property
    def is_saved_model(self) -> bool:
        """A SavedModel directory (saved_model.pb + variables/), served as it is."""
        return bool(self.signatures)

    @property
    def signature(self) -> savedmodel.SignatureInfo | None:
        return dict(self.signatures).get(self.signature_name)

    @property
    def tensors_only(self) -> bool:
        """Served as named tensors only (TF Serving's Predict, the OIP's infer): it cannot take one crop."""
        return self.input.kind == TENSORS


@dataclasses.dataclass(frozen=True)
class Discovery:
    """What a scan found: every complete version of every model, and the versions that could not be
    read, with why."""

    versions: dict[str, dict[int, ModelSpec]]  # model -> version -> spec
    broken: dict[str, dict[int, str]] = dataclasses.field(default_factory=dict)  # model -> version -> why
    unreadable: str = ""  # why the repository itself could not be read

    @property
    def problems(self) -> dict[str, str]:
        """Everything that could not be read, for people: "name@version" (or the repository) -> why."""
        problems = {str(ServableId(name, version)): why
                    for name, versions in self.broken.items() for version, why in versions.items()}
        return problems | ({"repository": self.unreadable} if self.unreadable else {})

    @property
    def specs(self) -> tuple[ModelSpec, ...]:
        """The highest readable version of every model."""
        return tuple(versions[max(versions)] for versions in self.versions.values() if versions)


class RepositoryMissing(ValueError):
    """The model repository a server would start on does not exist or holds no model (one line)."""


def check_repository(models_dir: Path) -> None:
    """Refuse to start on nothing: a repository that is not a directory, or holds no model directory
    (models/<name>/<version>/). A model whose versions are all broken still counts: /v1/models says why."""
    where = "name another with --models, PINPOINT_MODELS or `models` in the settings file"
    if not models_dir.exists():
        raise RepositoryMissing(f"the model repository {models_dir} does not exist ({where})")
    if not models_dir.is_dir():
        raise RepositoryMissing(f"the model repository {models_dir} is not a directory ({where})")
    for model_dir in models_dir.iterdir():
        if model_dir.is_dir() and not model_dir.name.startswith(".") and any(
                p.is_dir() and p.name.isdigit() for p in model_dir.iterdir()):
            return
    raise RepositoryMissing(f"the model repository {models_dir} holds no model: put one in "
                            f"{models_dir}/<name>/1/ (its graph and model.toml, docs/models.md), or {where}")


def scan(models_dir: Path, labels_dir: Path) -> Discovery:
    """Every version directory under models_dir that holds a model.toml or a SavedModel (saved_model.pb).

    A version directory is published by renaming it into place (docs/models.md), so one that has its
    model.toml is complete; a hidden or non-numeric directory (a copy in progress) is never looked at."""
    found: dict[str, dict[int, ModelSpec]] = {}
    broken: dict[str, dict[int, str]] = {}
    if not models_dir.is_dir():
        return Discovery({}, unreadable=f"the model repository {models_dir} is not a directory")
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        numbered = [(int(p.name), p) for p in model_dir.iterdir()
                    if p.is_dir() and p.name.isdigit() and int(p.name) > 0]
        # A SavedModel (saved_model.pb) counts without a model.toml: it describes itself.
        versions = sorted((number, p) for number, p in numbered if (p / CONFIG_NAME).is_file()
                          or (p / savedmodel.SAVED_MODEL_FILE).is_file())
        if not versions:
            continue  # not a model directory (no numbered version with a config)
        found[model_dir.name] = {}
        for version, version_dir in versions:
            try:
                found[model_dir.name][version] = read_spec(model_dir.name, version, version_dir, labels_dir)
            except ModelConfigError as error:
                broken.setdefault(model_dir.name, {})[version] = str(error)
    return Discovery(found, broken)


def read_spec(name: str, version: int, version_dir: Path, labels_dir: Path) -> ModelSpec:
    config_path = version_dir / CONFIG_NAME
    where = str(config_path)
    if not MODEL_NAME.match(name):
        raise ModelConfigError(f"{where}: model name {name!r} must be letters, digits, '.', '_' or '-'")
    if (version_dir / savedmodel.SAVED_MODEL_FILE).is_file() and not any(
            (version_dir / graph).is_file() for graph in GRAPH_FILES):  # a frozen graph or model.onnx wins
        return _saved_model_spec(name, version, version_dir, labels_dir)
    config = _read_config(config_path, where)
    try:
        section_input = config["input"]
        section_output = config["output"]
        section_crop = config.get("crop", {})
        graph_path = _graph_path(version_dir, config.get("graph"), where)
        labels = read_labels(labels_dir / f"{config.get('labels', name)}.txt")
        input_spec = _input_spec(section_input)
        crop = _crop_spec(section_crop, input_spec)
        backend = _backend(config.get("backend"), graph_path, input_spec)
        return ModelSpec(
            name=name, version=version, directory=version_dir, graph_path=graph_path, labels=labels,
            input=input_spec, output_tensor=str(section_output["tensor"]),
            softmax=bool(section_output.get("softmax", False)), crop=crop, backend=backend)
    except KeyError as error:
        raise ModelConfigError(f"{where}: missing key {error}") from None
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"{where}: {error}") from None


def _read_config(config_path: Path, where: str) -> dict:
    try:
        return tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ModelConfigError(f"{where}: {error}") from None


def _saved_model_spec(name: str, version: int, version_dir: Path, labels_dir: Path) -> ModelSpec:
    """A SavedModel served as it is: its signature says what it takes and gives; a model.toml beside it
    (optional) adds what region classification needs (crop, labels, normalisation) or picks the
    signature (`signature`) and tensors (input.tensor, output.tensor: the signature's aliases). One
    whose signature cannot take one crop (several inputs or outputs ...) is served as named tensors only,
    unless a model.toml asks for region classification ([input], [output], [crop], labels)."""
    config_path = version_dir / CONFIG_NAME
    configured = config_path.is_file()
    where = str(config_path) if configured else str(version_dir / savedmodel.SAVED_MODEL_FILE)
    config: dict = {}
    if configured:
        config = _read_config(config_path, where)
    try:
        signatures = savedmodel.read_signatures(version_dir)
    except savedmodel.NotASavedModel as error:
        raise ModelConfigError(str(error)) from None
    try:
        wanted = str(config.get("signature", savedmodel.SERVING_DEFAULT))
        if wanted not in signatures:
            raise ValueError(f"the SavedModel has no signature {wanted!r}; its signatures: "
                             f"{', '.join(sorted(signatures)) or 'none'}")
        signature = signatures[wanted]
        section_input = dict(config.get("input", {}))
        section_output = dict(config.get("output", {}))
        try:
            tensor = _alias(signature.inputs, section_input.get("tensor"), "input", wanted)
            output = _alias(signature.outputs, section_output.get("tensor"), "output", wanted)
            if len(signature.inputs) != 1:
                raise ValueError(f"signature {wanted!r} takes {len(signature.inputs)} inputs "
                                 f"({', '.join(t.key for t in signature.inputs)}); Pinpoint feeds one")
            section_input["tensor"] = tensor.key
            _describe_input(section_input, tensor, wanted)
            input_spec = _input_spec(section_input)
            labels = _saved_model_labels(name, config, labels_dir, output)
            output_key = output.key
        except ValueError:
            if any(key in config for key in REGION_KEYS):  # region classification asked for: say why not
                raise
            # Served as it is, as TF Serving would: its named tensors in, its named tensors out.
            input_spec = InputSpec(tensor="", kind=TENSORS, height=1, width=1, channels=1, dtype="float32")
            labels, output_key = (), ""
        crop = _crop_spec(config.get("crop", {}), input_spec)
        backend = config.get("backend")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        return ModelSpec(
            name=name, version=version, directory=version_dir,
            graph_path=version_dir / savedmodel.SAVED_MODEL_FILE, labels=labels, input=input_spec,
            output_tensor=output_key, softmax=bool(section_output.get("softmax", False)), crop=crop,
            backend=backend, signatures=tuple(sorted(signatures.items())), signature_name=wanted,
            configured=configured)
    except ModelConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ModelConfigError(f"{where}: {error}") from None


def _saved_model_labels(name: str, config: dict, labels_dir: Path, output) -> tuple[str, ...]:
    """The labels file model.toml names or the model's own, else class i labelled "i"."""
    labels_path = labels_dir / f"{config.get('labels', name)}.txt"
    if "labels" in config or labels_path.is_file():
        return read_labels(labels_path)
    width = output.shape[-1] if output.shape and output.shape[-1] > 0 else None
    if width is None:
        raise ValueError(f"output {output.key!r} has no known width {_dims(output.shape)}: give "
                         f"labels/{name}.txt or `labels` in a model.toml beside it")
    return tuple(str(i) for i in range(width))


def _alias(tensors, named, what: str, signature: str):
    """The signature's tensor model.toml names (by alias or graph tensor name), else its only one."""
    if named is not None:
        for tensor in tensors:
            if str(named) in (tensor.key, tensor.name, tensor.name.removesuffix(":0")):
                return tensor
        raise ValueError(f"{what}.tensor {named!r} is not an {what} of signature {signature!r}; its {what}s: "
                         + ", ".join(f"{t.key} {t.dtype} {_dims(t.shape)}" for t in tensors))
    if len(tensors) != 1 and what == "output":
        raise ValueError(f"signature {signature!r} has {len(tensors)} outputs "
                         f"({', '.join(t.key for t in tensors)}): name one with output.tensor in model.toml")
    if not tensors:
        raise ValueError(f"signature {signature!r} has no {what}")
    return tensors[0]


def _dims(shape) -> str:
    return "[unknown rank]" if shape is None else "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def _describe_input(section: dict, tensor, signature: str) -> None:
    """Fill what model.toml leaves out of [input] from the signature's shape and dtype."""
    if tensor.dtype not in ("float32", "uint8"):
        raise ValueError(f"input {tensor.key!r} of signature {signature!r} is {tensor.dtype or 'of unknown type'}; "
                         "Pinpoint feeds float32 or uint8")
    section.setdefault("dtype", tensor.dtype)
    shape = tensor.shape
    if shape is not None and len(shape) == 4 and section.get("kind", "image") == "image":
        layout = section.get("layout", "nhwc")
        h, w, c = (shape[2], shape[3], shape[1]) if layout == "nchw" else (shape[1], shape[2], shape[3])
        for key, value in (("height", h), ("width", w), ("channels", c)):
            if value > 0:
                section.setdefault(key, value)
    elif shape is not None and len(shape) == 2 and shape[1] > 0 and "kind" not in section:
        section.update(kind="flat", height=section.get("height", 1), width=section.get("width", shape[1]),
                       channels=section.get("channels", 1))
    missing = [key for key in ("height", "width") if key not in section]
    if missing:
        raise ValueError(f"input {tensor.key!r} of signature {signature!r} is {_dims(shape)}: give "
                         f"input.{' and input.'.join(missing)} in a model.toml beside it")


def _graph_path(version_dir: Path, named: str | None, where: str) -> Path:
    if named is not None:
        path = version_dir / str(named)
        if not path.is_file():
            raise ModelConfigError(f"{where}: graph file {path.name} is missing")
        return path
    for candidate in GRAPH_FILES:
        if (version_dir / candidate).is_file():
            return version_dir / candidate
    raise ModelConfigError(f"{where}: no frozen_graph.pb or model.onnx beside it (or name the file with `graph`)")


def _backend(value, graph_path: Path, input_spec: InputSpec) -> str | None:
    """model.toml's `backend`, checked against what can run the model at all."""
    if value is not None and value not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {value!r}")
    if graph_path.suffix == ".onnx":
        if value == "tensorflow":
            raise ValueError(f"{graph_path.name} is an ONNX model: it runs on onnxruntime, not tensorflow")
        if input_spec.kind == "encoded":
            raise ValueError("an ONNX model cannot take the encoded kind (JPEG bytes); use image or flat")
    elif input_spec.kind == "encoded" and value == "onnxruntime":
        raise ValueError("an encoded input (JPEG bytes in a string tensor) runs on tensorflow only")
    return value


def read_labels(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise ModelConfigError(f"labels file {path} is missing") from None
    labels = tuple(line.strip() for line in lines if line.strip())
    if not labels:
        raise ModelConfigError(f"labels file {path} is empty")
    return labels


def _input_spec(section: dict) -> InputSpec:
    kind = section.get("kind", "image")
    if kind not in INPUT_KINDS:
        raise ValueError(f"input.kind must be one of {', '.join(INPUT_KINDS)}, got {kind!r}")
    dtype = section.get("dtype", "float32")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"input.dtype must be float32 or uint8, got {dtype!r}")
    layout = section.get("layout", "nhwc")
    if layout not in LAYOUTS:
        raise ValueError(f"input.layout must be nhwc or nchw, got {layout!r}")
    if layout == "nchw" and kind != "image":
        raise ValueError("input.layout = \"nchw\" is for the image kind only")
    channels = int(section.get("channels", 3))
    if channels not in (1, 3):
        raise ValueError(f"input.channels must be 1 or 3, got {channels}")
    mean, std = section.get("mean"), section.get("std")
    if (mean is None) != (std is None):
        raise ValueError("input.mean and input.std go together")
    if mean is not None:
        mean, std = _per_channel(mean, channels, "mean"), _per_channel(std, channels, "std")
        if any(s == 0 for s in std):
            raise ValueError("input.std must not contain 0")
    spec = InputSpec(
        tensor=str(section["tensor"]), kind=kind, height=int(section["height"]), width=int(section["width"]),
        channels=channels, dtype=dtype, scale=float(section.get("scale", 1.0)),
        offset=float(section.get("offset", 0.0)), mean=mean, std=std,
        jpeg_quality=int(section.get("jpeg_quality", 95)), layout=layout)
    if spec.height < 1 or spec.width < 1:
        raise ValueError("input.height and input.width must be positive")
    return spec


def _per_channel(values, channels: int, key: str) -> tuple[float, ...]:
    values = [float(v) for v in (values if isinstance(values, list) else [values])]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"input.{key} needs 1 or {channels} values")
    return tuple(values)


def _crop_spec(section: dict, input_spec: InputSpec) -> CropSpec:
    box = section.get("box")
    if box is not None:
        if not (isinstance(box, list) and len(box) == 2 and all(int(v) > 0 for v in box)):
            raise ValueError("crop.box must be [width, height] in pixels")
        box = (int(box[0]), int(box[1]))
    resize = section.get("resize", "bilinear")
    if resize not in RESIZE_FILTERS:
        raise ValueError(f"crop.resize must be one of {', '.join(RESIZE_FILTERS)}, got {resize!r}")
    fraction = float(section.get("fraction", 0.15))
    if box is None and not 0 < fraction <= 1:
        raise ValueError("crop.fraction must be in (0, 1]")
    return CropSpec(
        width=input_spec.width, height=input_spec.height, channels=input_spec.channels,
        fraction=None if box is not None else fraction, min_px=int(section.get("min_px", 24)),
        box=box, keep_aspect=bool(section.get("keep_aspect", True)), resize=resize)
