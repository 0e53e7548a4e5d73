"""The errors Pinpoint's core raises, named by the contract's machine codes (docs/api.md).

The core knows codes only; the HTTP layer maps each code to its status (service/http/api/error_responses.py).
"""

from __future__ import annotations

import re
from pathlib import Path


class PinpointError(Exception):
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class BadRequest(PinpointError):
    code = "bad_request"


class InvalidImage(PinpointError):
    code = "invalid_image"


class PointOutOfBounds(PinpointError):
    code = "point_out_of_bounds"


class PathForbidden(PinpointError):
    code = "path_forbidden"


class NotFound(PinpointError):
    code = "not_found"


class PayloadTooLarge(PinpointError):
    code = "payload_too_large"


class ImageTooLarge(PinpointError):
    code = "image_too_large"


class UnsupportedMediaType(PinpointError):
    code = "unsupported_media_type"


class Overloaded(PinpointError):
    code = "overloaded"


class ModelUnavailable(PinpointError):
    code = "model_unavailable"


class Timeout(PinpointError):
    code = "timeout"


# ---- messages that carry the numbers ----
def size(n: int) -> str:
    """Bytes as people read them, in MB and KB of 2**20 and 2**10 bytes (as the settings count them)."""
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def round_size(n: int) -> str:
    """A configured limit, as round as it is: 20 MB, 1.9 MB."""
    return size(n).replace(".0 ", " ")


def body_too_large(limit: int, length: int | None = None) -> PayloadTooLarge:
    """From Content-Length (`length`), or while a body without one streamed (reading stopped at the limit)."""
    if length is None:
        return PayloadTooLarge(f"the body passed the limit of {round_size(limit)} while it streamed")
    return PayloadTooLarge(f"the body is {size(length)}; the limit is {round_size(limit)}")


def _megapixels(pixels: int) -> str:
    mp = pixels / 1e6
    if mp < 1:
        return f"{mp:.2f}"
    return f"{mp:,.0f}" if mp >= 100 else f"{mp:.1f}".removesuffix(".0")


def image_too_large(width: int, height: int, max_pixels: int, max_side: int) -> ImageTooLarge:
    """The image's size against the limit it passes (pixels first: what a decompression bomb inflates)."""
    if width * height > max_pixels:
        return ImageTooLarge(f"the image is {width}×{height} ({_megapixels(width * height)} MP); "
                             f"the limit is {_megapixels(max_pixels)} MP")
    return ImageTooLarge(f"the image is {width}×{height}; the limit is {max_side:,} px a side")


def first_line(error: BaseException, limit: int | None = 300) -> str:
    """An exception's message in one line, for a log field or a one-line answer: its first line (at most
    `limit` characters; libraries' messages go on with tracebacks and advice), else its class's name."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


# An absolute path with at least one directory: /srv/models/x/1/model.onnx, /tmp/cache/ab12.onnx
_ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:[\w.@+=,-]+/)+[\w.@+=,-]*")


def public_text(text: str | None, models: Path | str | None) -> str | None:
    """A server-side message (a version's load error, a reason) as clients may read it: paths inside the
    model repository relative to it (misnamed/1/model.onnx), any other absolute path cut to its file name.
    The server log keeps the whole message."""
    if not text:
        return text or None
    if models:
        for root in {str(models), str(Path(models).resolve())}:
            text = text.replace(root.rstrip("/") + "/", "")
    return _ABSOLUTE.sub(lambda match: "…/" + Path(match.group(0)).name, text)
