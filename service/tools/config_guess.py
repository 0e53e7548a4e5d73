"""A starting model.toml for a frozen GraphDef (`pinpoint inspect --config`): the input kind from the
placeholder's dtype and rank, its size from its shape (or from a resize after it), the output from the
best candidate, and notes on everything guessed. The guess is read back by the server's own reader
(service/serving/repository.py) before anyone sees it.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

from service.tools import model_toml
from service.tools.graph_description import FLOATS, GraphDescription, Placeholder, TensorInfo


class ConfigGuessError(ValueError):
    """No starting model.toml can be guessed for this graph (or for the tensors asked for)."""


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
    entries: list[model_toml.Entry] = [("tensor", placeholder.name)]
    if dtype == "string":
        kind = "encoded"
        height, width = description.image_size or (224, 224)
        channels = description.decode_channels if description.decode_channels in (1, 3) else 3
        if description.image_size is None:
            notes.append("no resize to a fixed size found after the input: height and width are a guess (224)")
        entries += [("kind", kind), ("height", height), ("width", width), ("channels", channels),
                    ("jpeg_quality", 95)]
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
        entries += [("kind", kind), ("height", height), ("width", width), ("channels", channels), ("dtype", dtype)]
        if dtype == "float32":
            entries += [("scale", 1 / 255, "value = pixel * scale + offset: CHECK"), ("offset", 0.0)]
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
    toml = model_toml.render(
        comments=[f"A starting model.toml for {Path(description.path).name or 'the graph'}, written by "
                  "`pinpoint inspect --config`.",
                  "The format is docs/models.md. Guessed, to check:" if notes else "The format is docs/models.md.",
                  *(f"- {note}" for note in notes)],
        top=[("graph", "frozen_graph.pb"),
             f'labels = "<name>"        # labels/<name>.txt, {labels}; defaults to the model\'s directory name'],
        input=entries,
        output=[("tensor", output.name, f"[batch, {classes}]") if classes else ("tensor", output.name),
                ("softmax", softmax)],
        crop=model_toml.crop(0.15, 24, fraction_note="the window around the point: 15% of the image's width and "
                                                     "height"))
    return ConfigGuess(toml=toml, input=placeholder, output=output, kind=kind, classes=classes, notes=tuple(notes))


def _named(tensors, name: str, refusal: str):
    """The tensor the user named (`input` means `input:0`), or ConfigGuessError: `refusal` with the name
    and the names there are."""
    wanted = name if ":" in name else f"{name}:0"
    for tensor in tensors:
        if tensor.name == wanted:
            return tensor
    raise ConfigGuessError(refusal.format(wanted=wanted, names=", ".join(t.name for t in tensors) or "none"))


def _pick_input(description: GraphDescription, name: str | None) -> Placeholder:
    if name is not None:
        return _named(description.placeholders, name, "no placeholder {wanted} (placeholders: {names})")
    required = [p for p in description.placeholders if not p.has_default]
    if not required:
        raise ConfigGuessError("the graph has no placeholder to feed")

    def fits(p: Placeholder) -> bool:
        return p.dtype == "string" or (p.dtype in ("float32", "uint8") and p.rank in (2, 4))
    return next((p for p in required if fits(p)), required[0])


def _pick_output(description: GraphDescription, name: str | None) -> TensorInfo:
    if name is not None:
        return _named(description.outputs, name, "{wanted} is not a candidate output (candidates: {names})")
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

