"""Errors as the contract's JSON (docs/api.md): {"error": "<message>", "code": "<machine_code>"} with its status.

Every error reaches the client through `payload`, by one of four doors:
- a `Refusal` raised by a tool or a handler: an HTTPError, so CherryPy ends the request at once (no
  body read, no handler run) and its `set_response` writes the JSON, as CherryPy's own errors do;
- CherryPy's own HTTPErrors (unknown route, a body it could not read): `error_page`;
- an unhandled exception: `unhandled_error`, a 500 Refusal after logging the traceback;
- cheroot's refusals of malformed HTTP, before CherryPy sees a request: service/http/server.py.
"""

from __future__ import annotations

import functools
import json
import math
import re
import uuid

import cherrypy
import structlog
from cherrypy._cperror import clean_headers

from service.errors import PinpointError, body_too_large

log = structlog.get_logger("pinpoint.api")
JSON = "application/json; charset=utf-8"

STATUS = {
    "bad_request": 400,
    "invalid_image": 400,
    "point_out_of_bounds": 400,
    "unauthorized": 401,
    "path_forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "image_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal_error": 500,
    "overloaded": 503,
    "model_unavailable": 503,
    "storage_unavailable": 503,
    "timeout": 504,
    "insufficient_storage": 507,
}
# Statuses CherryPy and cheroot answer by themselves -> (the status answered, the contract's code).
FOREIGN = {
    400: (400, "bad_request"),
    401: (401, "unauthorized"),
    403: (404, "not_found"),  # CherryPy's staticdir on /static/../x: there is no such file to serve
    404: (404, "not_found"),
    405: (405, "method_not_allowed"),
    408: (408, "bad_request"),  # the request did not arrive within socket_timeout
    411: (411, "bad_request"),
    413: (413, "payload_too_large"),
    414: (414, "bad_request"),
    415: (415, "unsupported_media_type"),
    429: (429, "rate_limited"),
    501: (501, "bad_request"),  # a Transfer-Encoding other than chunked
    503: (503, "overloaded"),
    505: (505, "bad_request"),  # an HTTP version other than 1.x
}
INTERNAL = "internal error; the request id identifies it in the server log"


def payload(message: str, code: str) -> bytes:
    """The one JSON shape of every error."""
    return json.dumps({"error": message, "code": code}).encode()


def foreign(status: int, message: str) -> tuple[int, str, str]:
    """A status CherryPy or cheroot chose -> (status, code, message) of the contract."""
    chosen, code = FOREIGN.get(status, (status, "bad_request" if status < 500 else "internal_error"))
    if chosen >= 500 and code == "internal_error":
        message = INTERNAL
    elif chosen != status:  # its words were about the status it chose, not the one answered
        message = "no such resource"
    return chosen, code, message


class Refusal(cherrypy.HTTPError):
    """A PinpointError as the HTTP answer that ends the request, raised from a tool or a handler."""

    def __init__(self, error: PinpointError, headers: dict[str, str] | None = None):
        self.error = error
        self.headers = dict(headers or {})
        super().__init__(STATUS.get(error.code, 400), error.message)

    def set_response(self) -> None:
        request, response = cherrypy.serving.request, cherrypy.serving.response
        clean_headers(self.code)  # drops what applied to a normal answer (Content-Length, Retry-After, ...)
        response.status = self.status
        response.headers["Content-Type"] = JSON
        response.headers.update(self.headers)
        if self.error.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(self.error.retry_after)))
        if _body_unread(request):
            response.headers["Connection"] = "close"  # the unread body must not pass for the next request
        response.body = payload(self.error.message, self.error.code)


def _body_unread(request) -> bool:
    rfile = getattr(request, "rfile", None)
    remaining = getattr(rfile, "remaining", None)  # cheroot's reader of a Content-Length body
    if remaining is not None:
        return remaining > 0
    return "Transfer-Encoding" in request.headers and not getattr(rfile, "closed", False)


def json_endpoint(handler=None, *, methods=None):
    """Expose a handler that returns a dict as JSON; a PinpointError it raises becomes a Refusal.

    `methods`: the methods it takes, checked before the body is read (the `methods` tool): a tuple,
    or a function of the path segments below the handler returning one (None: no such resource,
    which the handler answers). With a tuple the route takes no path segments below it: `/readyz/x`
    is a 404, whatever the handler's signature."""
    if handler is None:
        return functools.partial(json_endpoint, methods=methods)
    if isinstance(methods, (tuple, list)):
        methods = _leaf(tuple(methods))

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        if getattr(methods, "leaf", False) and len(args) > 1:  # args[0] is the handler's instance
            raise Refusal(PinpointError("no such resource", code="not_found"))
        try:
            result = handler(*args, **kwargs)
        except PinpointError as error:
            raise Refusal(error) from None
        cherrypy.serving.response.headers["Content-Type"] = JSON
        return json.dumps(result).encode()

    wrapper.exposed = True
    if methods is not None:
        wrapper.allowed_methods = methods
    return wrapper


def _leaf(methods: tuple[str, ...]):
    """A route with no path segments below it: these methods on it, nothing at all below it."""

    def allowed(*vpath):
        return None if vpath else methods

    allowed.leaf = True
    return allowed


def method_not_allowed(allowed) -> Refusal:
    method = cherrypy.serving.request.method
    choices = " or ".join(allowed) if len(allowed) < 3 else f"{', '.join(allowed[:-1])} or {allowed[-1]}"
    return Refusal(PinpointError(f"{method} is not allowed here; use {choices}", code="method_not_allowed"),
                   {"Allow": ", ".join(allowed)})


def require_method(*methods: str) -> None:
    """For a handler that checks its method itself (after the body was read): prefer declaring them."""
    if cherrypy.serving.request.method not in methods:
        raise method_not_allowed(methods)


def check_method(methods=None) -> None:
    """The `methods` tool: refuse a method the handler does not take before its body is read.
    The handler's declaration wins; `methods` (config) covers paths without one, e.g. static files."""
    request = cherrypy.serving.request
    handler = request.handler
    if isinstance(handler, cherrypy.NotFound):
        if methods is None:
            raise handler  # no such route: 404 whatever the method, before any body is read
        allowed = methods  # a static file, served by a tool in place of the handler
    else:
        declared = getattr(getattr(handler, "callable", None), "allowed_methods", None)
        allowed = declared(*getattr(handler, "args", ())) if callable(declared) else declared
        allowed = allowed or methods
        if allowed is None and callable(declared):
            raise cherrypy.NotFound()  # the handler says nothing is here: 404 before any body is read
    if allowed and request.method not in allowed:
        raise method_not_allowed(tuple(allowed))


def error_page(status, message, traceback, version) -> bytes:
    """CherryPy's own errors (unknown route, unreadable body, its tools) as the contract's JSON."""
    response = cherrypy.serving.response
    number = int(str(status).split()[0])
    if number == 404 and str(message).startswith("The given query string could not be processed"):
        number, message = 400, "the query string is not UTF-8 text"  # CherryPy says 404 for the client's bytes
    status, code, message = foreign(number, str(message))
    if status != number:
        message = f"The path {cherrypy.serving.request.path_info!r} was not found."
    response.status = status
    if code == "payload_too_large":  # CherryPy's body reader stopped at the limit while streaming
        maxbytes = getattr(cherrypy.serving.request.body, "maxbytes", None)
        if maxbytes:
            message = body_too_large(maxbytes).message
    response.headers["Content-Type"] = JSON
    request_id = getattr(cherrypy.serving.request, "request_id", None)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return payload(message, code)


def unhandled_error() -> None:
    """Log the traceback (never sent to the client) and answer a JSON 500."""
    request = cherrypy.serving.request
    request_id = getattr(request, "request_id", None)
    if not request_id:
        request.request_id = request_id = uuid.uuid4().hex
        cherrypy.serving.response.headers["X-Request-ID"] = request_id
    log.exception("unhandled_error", request_id=request_id, path=request.path_info)
    Refusal(PinpointError(INTERNAL, code="internal_error")).set_response()


# RFC 9110 byte ranges: "bytes=" and one or more first-last, either side optional (not both), 18 digits at most.
_RANGE = re.compile(r"bytes=[ \t]*(?:[0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18})"
                    r"(?:[ \t]*,[ \t]*(?:[0-9]{1,18}-[0-9]{0,18}|-[0-9]{1,18}))*[ \t]*")


def ignore_malformed_range() -> None:
    """A Range header that is not byte ranges is ignored, as RFC 9110 lets a server do: CherryPy's static
    file serving raises ValueError on `Range: 0` (a 500); without the header the whole file is sent."""
    headers = cherrypy.serving.request.headers
    if "Range" in headers and not _RANGE.fullmatch(headers["Range"]):
        del headers["Range"]


def install() -> None:
    cherrypy.tools.methods = cherrypy.Tool("on_start_resource", check_method, priority=15)
    cherrypy.tools.ranges = cherrypy.Tool("on_start_resource", ignore_malformed_range, priority=5)
