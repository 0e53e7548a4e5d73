"""One settings object, layered: shipped defaults < TOML file < PINPOINT_* environment < CLI flags."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "PINPOINT_"


class ConfigError(ValueError):
    """A setting that is unknown or of the wrong type."""


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    threads: int
    socket_timeout: float
    models: Path
    labels: Path
    image_root: Path | None
    upload_dir: Path
    upload_max_total_bytes: int
    upload_retention_s: float
    max_body_bytes: int
    max_pixels: int
    max_side: int
    formats: tuple[str, ...]
    deadline_ms: float
    max_batch: int
    queue_size: int
    intra_op_threads: int
    inter_op_threads: int
    log_level: str
    log_format: str

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def _defaults() -> dict[str, Any]:
    text = resources.files("service").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _coerce(key: str, value: Any, example: Any) -> Any:
    """Bring a value from TOML, the environment or a flag to the type of its shipped default."""
    if isinstance(value, str) and not isinstance(example, str):
        text = value.strip()
        if isinstance(example, list):
            # Environment lists are JSON (`["JPEG","PNG"]`) or comma-separated (`JPEG,PNG`).
            value = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",") if p.strip()]
        elif isinstance(example, bool):
            value = text.lower() in ("1", "true", "yes", "on")
        else:
            try:
                value = float(text) if isinstance(example, float) or "." in text else int(text)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(example, bool) != isinstance(value, bool):
        raise ConfigError(f"{key}: expected {type(example).__name__}, got {value!r}")
    if isinstance(example, (int, float)) and not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(example, list) and not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    if isinstance(example, str) and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def load_settings(
    config_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings; `overrides` are CLI flags (None values mean "not given")."""
    defaults = _defaults()
    merged = dict(defaults)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file:
        with open(config_file, "rb") as handle:
            layers.append((str(config_file), tomllib.load(handle)))
    environ = os.environ if environ is None else environ
    layers.append(("environment", {
        name[len(ENV_PREFIX):].lower(): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):].lower() in defaults
    }))
    layers.append(("flags", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for source, layer in layers:
        for key, value in layer.items():
            if key not in defaults:
                raise ConfigError(f"{source}: unknown setting {key!r}")
            merged[key] = _coerce(key, value, defaults[key])
    return _build(merged)


def _build(values: dict[str, Any]) -> Settings:
    def positive(key: str) -> None:
        if values[key] <= 0:
            raise ConfigError(f"{key} must be positive, got {values[key]!r}")

    for key in ("port", "threads", "socket_timeout", "max_body_bytes", "max_pixels", "max_side",
                "deadline_ms", "max_batch", "queue_size", "upload_max_total_bytes", "upload_retention_s"):
        positive(key)
    if values["log_format"] not in ("json", "console", "auto"):
        raise ConfigError(f"log_format must be json, console or auto, got {values['log_format']!r}")
    root = str(values["image_root"]).strip()
    return Settings(
        host=values["host"],
        port=int(values["port"]),
        threads=int(values["threads"]),
        socket_timeout=float(values["socket_timeout"]),
        models=Path(values["models"]).resolve(),
        labels=Path(values["labels"]).resolve(),
        image_root=Path(root).resolve() if root else None,
        upload_dir=Path(values["upload_dir"]).resolve(),
        upload_max_total_bytes=int(values["upload_max_total_bytes"]),
        upload_retention_s=float(values["upload_retention_s"]),
        max_body_bytes=int(values["max_body_bytes"]),
        max_pixels=int(values["max_pixels"]),
        max_side=int(values["max_side"]),
        formats=tuple(str(f).upper() for f in values["formats"]),
        deadline_ms=float(values["deadline_ms"]),
        max_batch=int(values["max_batch"]),
        queue_size=int(values["queue_size"]),
        intra_op_threads=int(values["intra_op_threads"]),
        inter_op_threads=int(values["inter_op_threads"]),
        log_level=str(values["log_level"]).lower(),
        log_format=values["log_format"],
    )
