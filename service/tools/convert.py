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

By concern: service/tools/model_source.py loads the model, service/serving/freezing.py freezes it,
service/tools/float16.py halves its weights, service/tools/conversion_check.py makes the check's inputs,
service/tools/model_toml.py writes the config, service/tools/publish.py publishes the version; this
module runs them in that order and reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from service.serving.freezing import INPUT_NAME, OUTPUT_NAME, ConvertError, Source, freeze
from service.tools import model_toml, publish
from service.tools.conversion_check import compare
from service.tools.float16 import halve_weights
from service.tools.model_source import check_source, load_source

__all__ = ["ConvertError", "ConvertReport", "Source", "convert", "freeze", "main"]
DEFAULT_SCALE = 1 / 255


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


# --- the conversion --------------------------------------------------------------------------------

def convert(model: str | Path, name: str, *, repository: str | Path = "models", labels_dir: str | Path | None = None,
            version: int | None = None, float16: bool = False, labels_file: str | None = None,
            scale: float | None = None, offset: float | None = None, size: tuple[int, int] | None = None,
            fraction: float = 0.15, min_px: int = 24, samples: int = 32, seed: int = 0,
            output_key: str | None = None, images: str | Path | None = None) -> ConvertReport:
    from service.serving import repository as repo
    from service.tools.graph_description import describe

    if not repo.MODEL_NAME.match(name):
        raise ConvertError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    repository = Path(repository)
    if labels_dir is None:  # `labels` beside the repository, as Pinpoint's defaults have them
        labels_dir = (repository if repository.name not in ("", ".", "..") else repository.resolve()).parent / "labels"
    labels_dir = Path(labels_dir)
    model_dir = repository / name
    if version is None:
        version = publish.next_version(model_dir)
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

    spec = repo.InputSpec(tensor=f"{INPUT_NAME}:0", kind=kind, height=height, width=width, channels=channels,
                          dtype=source.input_dtype, scale=scale, offset=offset)
    check = compare(source, float32_graph, graph_def if float16 else None, spec, samples=samples, seed=seed,
                    fraction=fraction, min_px=min_px, images=images)
    warnings += check.warnings
    expected, frozen32, answers = check.expected, check.frozen32, check.answers
    probabilities = bool(np.all(answers >= -1e-6) and np.allclose(answers.sum(axis=1), 1.0, atol=1e-3))
    softmax = output.computes not in ("Softmax", "Sigmoid") and not probabilities

    labels_name, labels, write_labels = publish.choose_labels(labels_dir, name, version, classes, labels_file, warnings)
    toml = _model_toml(source=source.path.name, kind=kind, height=height, width=width, channels=channels,
                       dtype=source.input_dtype, scale=scale, offset=offset, softmax=softmax, labels=labels_name,
                       fraction=fraction, min_px=min_px)
    data = graph_def.SerializeToString()

    # Publish: labels first (a version must find them), then the version directory by one rename.
    with publish.staged_version(target) as staging:
        publish.write_synced(staging / "frozen_graph.pb", data)
        publish.write_synced(staging / "model.toml", toml.encode("utf-8"))
        labels_path = publish.publish_labels(labels_dir, labels_name, labels) if write_labels \
            else labels_dir / f"{labels_name}.txt"
        try:
            repo.read_spec(name, version, staging, labels_dir)  # read back as the server will
        except repo.ModelConfigError as error:
            raise ConvertError(f"the written model.toml does not read back ({error})") from None

    return ConvertReport(
        name=name, version=version, version_dir=target, graph_path=target / "frozen_graph.pb",
        labels_path=labels_path, labels_written=write_labels, kind=kind, input_shape=trace_shape,
        classes=classes, softmax=softmax, scale=scale, offset=offset, size_bytes=len(data),
        float32_size_bytes=float32_graph.ByteSize(), float16=float16, halved_constants=halved, samples=samples,
        seed=seed, max_abs_diff=float(np.max(np.abs(answers - expected))),
        float32_max_abs_diff=float(np.max(np.abs(frozen32 - expected))),
        top1_agreement=float(np.mean(answers.argmax(axis=1) == expected.argmax(axis=1))),
        warnings=tuple(warnings), inputs=check.origin, spread=check.spread)


def _model_toml(*, source: str, kind: str, height: int, width: int, channels: int, dtype: str, scale: float,
                offset: float, softmax: bool, labels: str, fraction: float, min_px: int) -> str:
    normalise = [("scale", scale), ("offset", offset)] if dtype == "float32" else []
    return model_toml.render(
        comments=[f"Written by `pinpoint convert` from {source}; the format is docs/models.md."],
        top=[("graph", "frozen_graph.pb"), ("labels", labels)],
        input=[("tensor", f"{INPUT_NAME}:0"), ("kind", kind), ("height", height), ("width", width),
               ("channels", channels), ("dtype", dtype), *normalise],
        output=[("tensor", f"{OUTPUT_NAME}:0"), ("softmax", softmax)],
        crop=model_toml.crop(fraction, min_px))


def _geometry(input_shape, size) -> tuple[str, tuple[int | None, ...], int, int, int]:
    """kind, the shape to trace (batch None), height, width, channels."""
    from service.tools.config_guess import flat_geometry

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
    try:
        check_source(args.model)  # a mistyped path is said at once, not after TensorFlow's seconds of import
    except ConvertError as error:
        print(f"pinpoint convert: {error}", file=sys.stderr)
        return 2
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
