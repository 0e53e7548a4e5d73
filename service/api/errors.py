"""Errors as the contract's JSON: {"error": "<message>", "code": "<machine_code>"} with its status."""

from __future__ import annotations

import functools
import json
import math

import cherrypy
import structlog

from service.errors import PinpointError

log = structlog.get_logger("pinpoint.api")

STATUS = {
    "bad_request": 400,
    "invalid_image": 400,
    "point_out_of_bounds": 400,
    "unauthorized": 401,
    "path_forbidden": 403,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "image_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal_error": 500,
    "overloaded": 503,
    "model_unavailable": 503,
    "timeout": 504,
}
# CherryPy raises these itself (routing, body reading); they get the contract's code too.
CODE_FOR_STATUS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   429: "rate_limited",
                   405: "method_not_allowed", 411: "bad_request", 413: "payload_too_large",
                   414: "bad_request", 415: "unsupported_media_type", 500: "internal_error"}


def body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "code": code}).encode()


def render(error: PinpointError) -> bytes:
    """Set status and headers for a core error and return its JSON body."""
    response = cherrypy.serving.response
    response.status = STATUS.get(error.code, 400)
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return body(error.message, error.code)


def refuse(error: PinpointError) -> None:
    """Answer with this error from a tool, before the body is read or the handler runs."""
    request = cherrypy.serving.request
    cherrypy.serving.response.body = render(error)
    request.handler = None
    request.process_request_body = False
    if request.headers.get("Content-Length", "0") not in ("", "0") or "Transfer-Encoding" in request.headers:
        cherrypy.serving.response.headers["Connection"] = "close"  # the unread body must not pass for a request


def json_endpoint(handler):
    """Expose a handler that returns a dict; a PinpointError becomes the contract's JSON error."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            result = handler(*args, **kwargs)
        except PinpointError as error:
            return render(error)
        cherrypy.serving.response.headers["Content-Type"] = "application/json; charset=utf-8"
        return json.dumps(result).encode()

    wrapper.exposed = True
    return wrapper


def require_method(*methods: str) -> None:
    if cherrypy.serving.request.method not in methods:
        cherrypy.serving.response.headers["Allow"] = ", ".join(methods)
        raise PinpointError(f"use {' or '.join(methods)} here", code="method_not_allowed")


def error_page(status, message, traceback, version) -> bytes:
    """CherryPy's own errors (unknown route, unreadable body, unhandled exception) as JSON."""
    code_number = int(str(status).split()[0])
    code = CODE_FOR_STATUS.get(code_number, "bad_request" if code_number < 500 else "internal_error")
    if code_number >= 500:
        message = "internal error; the request id identifies it in the server log"
    response = cherrypy.serving.response
    response.headers["Content-Type"] = "application/json; charset=utf-8"
    request_id = getattr(cherrypy.serving.request, "request_id", None)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return body(str(message), code)


def unhandled_error() -> None:
    """Log the traceback (never sent to the client) and answer a JSON 500."""
    log.exception("unhandled_error", request_id=getattr(cherrypy.serving.request, "request_id", None),
                  path=cherrypy.serving.request.path_info)
    cherrypy.HTTPError(500).set_response()
