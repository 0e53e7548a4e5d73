"""One settings object, layered: shipped defaults < TOML file < PINPOINT_* environment < CLI flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
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
    drain_timeout_s: float
    drain_delay_s: float
    pidfile: Path
    log_file: Path
    models: Path
    labels: Path
    image_root: Path | None
    upload_dir: Path
    upload_max_total_bytes: int
    upload_retention_s: float
    decoded_cache_bytes: int
    draft_decode: bool
    max_body_bytes: int
    max_pixels: int
    max_side: int
    formats: tuple[str, ...]
    deadline_ms: float
    max_batch: int
    queue_size: int
    fuse_models: bool
    intra_op_threads: int
    inter_op_threads: int
    log_level: str
    log_format: str
    rate_limit_per_s: float
    rate_limit_burst: int
    rate_limit_backend: str
    rate_limit_fail_open: bool
    trusted_proxies: tuple[str, ...]
    api_keys: dict[str, str]  # name -> SHA-256 hex digest of the secret
    rate_limit_keys: dict[str, tuple[float, int]]  # key name -> (per second, burst)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def _defaults() -> dict[str, Any]:
    text = resources.files("service").joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _coerce(key: str, value: Any, example: Any) -> Any:
    """Bring a value from TOML, the environment or a flag to the type of its shipped default."""
    if isinstance(value, str) and not isinstance(example, str):
        text = value.strip()
        if isinstance(example, dict):
            try:
                value = json.loads(text)  # environment tables are JSON: PINPOINT_API_KEYS='{"a": "…"}'
            except ValueError:
                raise ConfigError(f"{key}: expected a JSON object") from None
        elif isinstance(example, list):
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
    if isinstance(example, dict) and not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table, got {value!r}")
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
    backend = str(values["rate_limit_backend"])
    if backend != "memory" and not backend.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"rate_limit_backend must be 'memory' or a redis:// URL, got {backend!r}")
    if values["drain_timeout_s"] <= 0 or values["drain_delay_s"] < 0:
        raise ConfigError("drain_timeout_s must be positive and drain_delay_s not negative")
    if values["rate_limit_per_s"] < 0 or values["rate_limit_burst"] < 1:
        raise ConfigError("rate_limit_per_s must be >= 0 and rate_limit_burst >= 1")
    api_keys = {str(name): str(digest).lower() for name, digest in values["api_keys"].items()}
    for name, digest in api_keys.items():
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(f"api_keys.{name} must be a SHA-256 hex digest (64 hex characters), not the key itself")
    rate_limit_keys = {}
    for name, limit in values["rate_limit_keys"].items():
        if not (isinstance(limit, list) and len(limit) == 2 and all(isinstance(v, (int, float)) for v in limit)):
            raise ConfigError(f"rate_limit_keys.{name} must be [per_second, burst]")
        rate_limit_keys[str(name)] = (float(limit[0]), int(limit[1]))
    for cidr in values["trusted_proxies"]:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"trusted_proxies: {cidr!r} is not an address or network") from None
    root = str(values["image_root"]).strip()
    return Settings(
        host=values["host"],
        port=int(values["port"]),
        threads=int(values["threads"]),
        socket_timeout=float(values["socket_timeout"]),
        drain_timeout_s=float(values["drain_timeout_s"]),
        drain_delay_s=float(values["drain_delay_s"]),
        pidfile=Path(values["pidfile"]).resolve(),
        log_file=Path(values["log_file"]).resolve(),
        models=Path(values["models"]).resolve(),
        labels=Path(values["labels"]).resolve(),
        image_root=Path(root).resolve() if root else None,
        upload_dir=Path(values["upload_dir"]).resolve(),
        upload_max_total_bytes=int(values["upload_max_total_bytes"]),
        upload_retention_s=float(values["upload_retention_s"]),
        decoded_cache_bytes=int(values["decoded_cache_bytes"]),
        draft_decode=bool(values["draft_decode"]),
        max_body_bytes=int(values["max_body_bytes"]),
        max_pixels=int(values["max_pixels"]),
        max_side=int(values["max_side"]),
        formats=tuple(str(f).upper() for f in values["formats"]),
        deadline_ms=float(values["deadline_ms"]),
        max_batch=int(values["max_batch"]),
        queue_size=int(values["queue_size"]),
        fuse_models=bool(values["fuse_models"]),
        intra_op_threads=int(values["intra_op_threads"]),
        inter_op_threads=int(values["inter_op_threads"]),
        log_level=str(values["log_level"]).lower(),
        log_format=values["log_format"],
        rate_limit_per_s=float(values["rate_limit_per_s"]),
        rate_limit_burst=int(values["rate_limit_burst"]),
        rate_limit_backend=str(values["rate_limit_backend"]),
        rate_limit_fail_open=bool(values["rate_limit_fail_open"]),
        trusted_proxies=tuple(values["trusted_proxies"]),
        api_keys=api_keys,
        rate_limit_keys=rate_limit_keys,
    )
