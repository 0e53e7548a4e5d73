"""The typed values of the classify pipeline: what a caller asks (validated once, at the edge) and
what the core answers. Rendering either to a wire format is the edge's job (service/api/render.py)."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from typing import Union

from service.errors import BadRequest
from service.manager import ModelRef

MAX_POINTS = 256
MAX_TOP_K = 20
_SERVER_ID = re.compile(r"[0-9a-f]{32}")


def new_request_id() -> str:
    """A request id of the server's own: 32 hex digits, the first 12 the time in ms (as UUIDv7 orders
    them), then 80 random bits. The time lets feedback tell an answer that may still be on its way to
    the log (a few seconds old) from one that never was, without waiting (service/feedback/service.py)."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def request_id_ms(request_id: str) -> int | None:
    """When the server minted this id (ms since the epoch), or None if it is not one of its own form."""
    if not isinstance(request_id, str) or not _SERVER_ID.fullmatch(request_id):
        return None
    return int(request_id[:12], 16)


@dataclasses.dataclass(frozen=True)
class Upload:
    """Image bytes sent with the request."""

    data: bytes


@dataclasses.dataclass(frozen=True)
class ServerPath:
    """An image on the server, relative to the configured image root."""

    path: str


@dataclasses.dataclass(frozen=True)
class StoredImage:
    """An image stored earlier with POST /v1/images."""

    image_id: str
    owner: str | None = None  # the API key's name that asks: only its own images are found (service/store.py)


ImageSource = Union[Upload, ServerPath, StoredImage]


@dataclasses.dataclass(frozen=True)
class ClassifyRequest:
    source: ImageSource
    points: tuple[tuple[float, float], ...]
    units: str = "px"
    models: tuple[ModelRef, ...] = ()  # empty: every served model, each at its default version
    top_k: int = 5
    deadline_ms: float | None = None  # None: the configured deadline
    request_id: str | None = None

    def __post_init__(self):
        if not isinstance(self.source, (Upload, ServerPath, StoredImage)):
            raise BadRequest("give exactly one image source: an image, a path or an image_id")
        if self.units not in ("px", "pct"):
            raise BadRequest(f"units must be 'px' or 'pct', got {self.units!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= MAX_TOP_K:
            raise BadRequest(f"top_k must be an integer from 1 to {MAX_TOP_K}")
        if not self.points:
            raise BadRequest("give a point: x and y, or points")
        if len(self.points) > MAX_POINTS:
            raise BadRequest(f"at most {MAX_POINTS} points per request, got {len(self.points)}")


def model_refs(names) -> tuple[ModelRef, ...]:
    """`["color@2", "theme"]` -> references; a malformed one is the caller's mistake (400)."""
    try:
        return tuple(ModelRef.parse(name) for name in names or ())
    except ValueError as error:
        raise BadRequest(f"models: {error}") from None


@dataclasses.dataclass(frozen=True)
class Label:
    label: str
    score: float


@dataclasses.dataclass(frozen=True)
class PointResult:
    x: float  # pixels of the displayed image
    y: float
    results: dict[str, list[Label]]  # model -> top k, highest first


@dataclasses.dataclass(frozen=True)
class ModelAnswer:
    """Which servable produced a model's results."""

    version: int
    backend: str


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str


@dataclasses.dataclass(frozen=True)
class ClassifyResult:
    request_id: str
    image: ImageInfo
    predictions: list[PointResult]
    models: dict[str, ModelAnswer]
    errors: dict[str, str]  # model -> why it has no results (the others still answer)
    timings_ms: dict[str, float]
