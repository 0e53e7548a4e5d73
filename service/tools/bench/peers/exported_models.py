"""What the peers serve: Pinpoint's own models as ONNX files, and a manifest naming them.

Runs in Pinpoint's environment. Each model is loaded exactly as Pinpoint loads it (service.serving.loader:
a frozen graph converted by tf2onnx, verified against TensorFlow, cached in the `onnx_cache` directory;
a model.onnx as it is), and the ONNX model that loader would serve is written out for the peers. The
manifest (JSON) gives each model's name, version, version directory (the peers read its model.toml with
Pinpoint's own reader, so their crops and preparation are Pinpoint's) and ONNX input and output names.
"""

from __future__ import annotations

import json
from pathlib import Path

from service.serving import repository
from service.serving.loader import LoadOptions, load_servable


class NotOnnx(RuntimeError):
    """A model Pinpoint serves on TensorFlow: the peers' environment has no TensorFlow to run it."""


def write_manifest(out_dir: Path, models_dir: Path, labels_dir: Path, settings, names: list[str] | None = None) -> Path:
    """The manifest of the highest version of each model in `models_dir` (only `names`, when given), with
    the ONNX files beside it in `out_dir`."""
    options = LoadOptions.of(settings, backend="onnxruntime")
    specs = repository.scan(Path(models_dir), Path(labels_dir)).specs
    if names:
        unknown = sorted(set(names) - {spec.name for spec in specs})
        if unknown:
            raise ValueError(f"no model named {', '.join(unknown)} in {models_dir}")
        specs = tuple(spec for spec in specs if spec.name in names)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec in specs:
        servable = load_servable(spec, options)
        try:
            if getattr(servable, "backend", "") != "onnxruntime":
                raise NotOnnx(f"{spec.key} runs on {servable.backend} here; the peers need it as ONNX")
            onnx_path = out_dir / f"{spec.name}-{spec.version}.onnx"
            model = servable.model
            onnx_path.write_bytes(model.read_bytes() if isinstance(model, Path) else model)
            entries.append({"name": spec.name, "version": spec.version, "directory": str(spec.directory),
                            "onnx": str(onnx_path), "input": servable.input_name, "output": servable.output_name})
        finally:
            servable.close()
    manifest = out_dir / "manifest.json"
    manifest.write_text(json.dumps({"labels": str(Path(labels_dir).resolve()), "models": entries}, indent=1))
    return manifest
