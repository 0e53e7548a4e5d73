"""The typed values of the classify pipeline: what a caller asks (validated once, at the edge) and
what the core answers. Rendering either to a wire format is the edge's job (service/http/api/render.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import secrets
import time

from service.errors import BadRequest
from service.serving.manager import ModelRef

MAX_POINTS = 256
MAX_TOP_K = 20
UNITS = ("px", "pct")  # pixels of the image, percent of its sides; the first is the default
_SERVER_ID = re.compile(r"[0-9a-f]{32}")
_KEY: list[bytes] = []


def use_replica_secret(secret: str) -> None:
    """Sign ids with a secret replicas share (the replica_secret setting), so each knows the others' ids."""
    if secret:
        _KEY[:] = [hmac.new(secret.encode(), b"pinpoint request ids", hashlib.sha256).digest()]


def _id_key() -> bytes:
    """The key that signs this server's request ids: the replicas' shared secret when one is set, else
    derived from the secret the supervisor gives its API workers and runner (so every worker of one
    server knows every other's ids), else this process's own."""
    if not _KEY:
        from service.processes.roles import SECRET_ENV

        shared = os.environ.get(SECRET_ENV)
        seed = bytes.fromhex(shared) if shared else secrets.token_bytes(32)
        _KEY.append(hmac.new(seed, b"pinpoint request ids", hashlib.sha256).digest())
    return _KEY[0]


def _signature(stamp_and_random: str) -> str:
    return hmac.new(_id_key(), stamp_and_random.encode(), hashlib.sha256).hexdigest()[:8]


def new_request_id() -> str:
    """A request id of the server's own: 32 hex digits, the time in ms (12, as UUIDv7 orders them), 48
    random bits (12), and a 32-bit signature of both (8) with a key only this server's processes hold.
    Feedback reads from it whether an answer may still be on its way to the log (minted here a few
    seconds ago) without waiting for anything else (service/feedback/service.py)."""
    head = f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"
    return head + _signature(head)


def request_id_ms(request_id: str) -> tuple[int, bool] | None:
    """(when it was minted, in ms since the epoch; whether this server minted it) for an id of the
    server's form, else None. An id of the form without this server's signature is another replica's,
    or forged."""
    if not isinstance(request_id, str) or not _SERVER_ID.fullmatch(request_id):
        return None
    return int(request_id[:12], 16), hmac.compare_digest(request_id[24:], _signature(request_id[:24]))


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
    # The API key's name that asks: only its own images are found (service/classify/image_store.py).
    owner: str | None = None


ImageSource = Upload | ServerPath | StoredImage


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
        if self.units not in UNITS:
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
