"""TF Serving's errors: its error codes and the HTTP status of each (http_server.cc ToHTTPStatusCode),
Pinpoint's machine codes in TF's terms, and TF Serving's own words for a model, version or label it
does not have (server_core.cc, basic_manager.cc, get_model_status_impl.cc).

REST answers a TFServingError with `error.status` and {"error": error.message} (json_tensor.cc
MakeJsonFromStatus); gRPC aborts the call with the status code of the same name.
"""

from __future__ import annotations

from typing import Any

# http_server.cc ToHTTPStatusCode
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# Pinpoint's machine codes (service/errors.py) -> (TF error code, HTTP status). Statuses stay those of
# docs/api.md; the TF code is what a status document or a log would name.
FROM_PINPOINT = {
    "bad_request": ("INVALID_ARGUMENT", 400),
    "invalid_image": ("INVALID_ARGUMENT", 400),
    "point_out_of_bounds": ("INVALID_ARGUMENT", 400),
    "unsupported_media_type": ("INVALID_ARGUMENT", 415),
    "payload_too_large": ("INVALID_ARGUMENT", 413),
    "image_too_large": ("INVALID_ARGUMENT", 413),
    "method_not_allowed": ("INVALID_ARGUMENT", 405),
    "unauthorized": ("UNAUTHENTICATED", 401),
    "path_forbidden": ("PERMISSION_DENIED", 403),
    "forbidden": ("PERMISSION_DENIED", 403),
    "not_found": ("NOT_FOUND", 404),
    "rate_limited": ("RESOURCE_EXHAUSTED", 429),
    "overloaded": ("UNAVAILABLE", 503),
    "model_unavailable": ("UNAVAILABLE", 503),
    "timeout": ("DEADLINE_EXCEEDED", 504),
    "internal_error": ("INTERNAL", 500),
}


class TFServingError(Exception):
    """An error on a TF Serving route: TF's error code, its HTTP status, and the message for {"error": ...}."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT", *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status if status is not None else HTTP_STATUS.get(code, 500)
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return error_body(self.message)

    @classmethod
    def from_pinpoint(cls, error: Any) -> TFServingError:
        """The same failure for a PinpointError (anything with .code, .message, .retry_after)."""
        code, status = FROM_PINPOINT.get(getattr(error, "code", ""), ("INVALID_ARGUMENT", 400))
        return cls(getattr(error, "message", str(error)), code, status=status,
                   retry_after=getattr(error, "retry_after", None))


def error_body(message: str) -> dict[str, str]:
    """MakeJsonFromStatus: the status message alone, under "error"."""
    return {"error": message}


def invalid(message: str) -> TFServingError:
    return TFServingError(message, "INVALID_ARGUMENT")


# TF Serving's messages for a model, version or label it does not have (server_core.cc, basic_manager.cc,
# get_model_status_impl.cc).
def servable_not_found(name: str, version: int | None = None) -> TFServingError:
    request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return TFServingError(f"Servable not found for request: {request}", "NOT_FOUND")


def version_not_found(name: str, version: int) -> TFServingError:
    """GET status of a version the model does not have."""
    return TFServingError(f"Could not find version {version} of model {name}", "NOT_FOUND")


def no_versions(name: str) -> TFServingError:
    """GET status of a model with no version at all."""
    return TFServingError(f"Could not find any versions of model {name}", "NOT_FOUND")


def unknown_label(label: str) -> TFServingError:
    """TF Serving answers this with INVALID_ARGUMENT (400); Pinpoint's contract says 404."""
    return TFServingError(f"Unrecognized servable version label: {label}", "NOT_FOUND")
