"""CORS (`cors_origins`, off by default): which other origins' web pages may call the API.

A preflight (OPTIONS with Access-Control-Request-Method) from an allowed origin is answered 204 here,
before the methods check and before auth (a browser never sends credentials on a preflight); any
other answer to an allowed origin, errors included, carries Access-Control-Allow-Origin and exposes the
headers a client reads (X-Request-ID, Retry-After, the RateLimit-* and the Open Inference Protocol's
Inference-Header-Content-Length). Origins not listed get no CORS header: the browser keeps its page out.
The list follows a reload (SIGHUP).
"""

from __future__ import annotations

import cherrypy

from service.config import Settings
from service.http.plugin import SETTINGS

ALLOW_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
ALLOW_HEADERS = ("Authorization, X-API-Key, Content-Type, X-Request-ID, X-Deadline-Ms, "
                 "Inference-Header-Content-Length")
EXPOSE_HEADERS = ("X-Request-ID, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, "
                  "Inference-Header-Content-Length")
MAX_AGE_S = 600


class Preflight(cherrypy.HTTPError):
    """Ends the request with 204 and the CORS answer (an HTTPError so CherryPy stops at once, as it
    does for the API's refusals)."""

    def __init__(self, headers: dict[str, str]):
        Exception.__init__(self, "CORS preflight")
        self.status = self.code = 204
        self._message = ""
        self.headers = headers

    def set_response(self) -> None:
        response = cherrypy.serving.response
        response.status = 204
        response.headers.pop("Content-Type", None)
        response.headers.update(self.headers)
        response.body = b""


class Cors:
    def __init__(self, settings: Settings):
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        self.origins = frozenset(settings.cors_origins)

    def _allowed(self) -> str | None:
        origin = cherrypy.serving.request.headers.get("Origin")
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def preflight(self) -> None:
        request = cherrypy.serving.request
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return
        allowed = self._allowed()
        if allowed is None:
            return  # not ours to allow: the request goes on (and is refused as any OPTIONS is)
        raise Preflight({"Access-Control-Allow-Origin": allowed, "Vary": "Origin",
                         "Access-Control-Allow-Methods": ALLOW_METHODS, "Access-Control-Allow-Headers": ALLOW_HEADERS,
                         "Access-Control-Max-Age": str(MAX_AGE_S)})

    def annotate(self) -> None:
        allowed = self._allowed()
        if allowed is None:
            return
        headers = cherrypy.serving.response.headers
        headers["Access-Control-Allow-Origin"] = allowed
        headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if allowed != "*":
            headers["Vary"] = "Origin"


def install(settings: Settings) -> dict:
    """The tools, and the config that turns them on for the whole application."""
    cors = Cors(settings)
    cherrypy.engine.subscribe(SETTINGS, cors.configure)
    # After the request id (10), before the API-key guard (12) and the methods check (15): a preflight carries no key.
    cherrypy.tools.cors_preflight = cherrypy.Tool("on_start_resource", cors.preflight, priority=11)
    cherrypy.tools.cors_headers = cherrypy.Tool("before_finalize", cors.annotate, priority=90)
    return {"tools.cors_preflight.on": True, "tools.cors_headers.on": True}
