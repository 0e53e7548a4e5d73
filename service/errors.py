"""The errors Pinpoint's core raises, named by the contract's machine codes (../shared/API.md).

The core knows codes only; the HTTP layer maps each code to its status (service/api/errors.py).
"""

from __future__ import annotations


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
