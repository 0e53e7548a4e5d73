"""CherryPy tools that guard the API before a byte of the body is read: auth, rate limits, body size.

Each refusal raises a Refusal (service/http/api/error_responses.py): the request ends there, with the contract's
JSON error, without reading the body or running the handler. Auth comes first, so a request without
a valid key never spends a token of anyone's rate limit.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math

import cherrypy
import structlog

from service.config import Settings
from service.errors import PinpointError, body_too_large
from service.http.api.error_responses import Refusal
from service.http.ratelimit import Buckets

log = structlog.get_logger("pinpoint.protect")
OPEN_PATHS = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")


class Guard:
    """Who is calling (API key or address), whether they may, and how often."""

    def __init__(self, settings: Settings, buckets: Buckets, on_refused=None):
        self.buckets = buckets
        self.on_refused = on_refused  # called once per request refused by the rate limiter
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """Take these settings: at start, and after a reload (the plugin publishes them on the bus)."""
        self.settings = settings
        # Compare digests, so neither the secrets nor their length are held or leaked by timing.
        self.key_digests = {bytes.fromhex(digest): name for name, digest in settings.api_keys.items()}
        self.proxies = [ipaddress.ip_network(cidr, strict=False) for cidr in settings.trusted_proxies]

    # ---- tools ----
    def check(self) -> None:
        request = cherrypy.serving.request
        if not guarded(request.path_info):
            return  # health, the page and its assets hold nothing; the API they call is guarded
        key_name = self._authenticate(request) if self.key_digests else None
        if self.settings.rate_limit_per_s > 0:
            self._limit(key_name, request)

    def limit_body(self) -> None:
        """Refuse from Content-Length; bodies without one stop at the same limit while streaming."""
        length = cherrypy.serving.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.settings.max_body_bytes:
            raise Refusal(body_too_large(self.settings.max_body_bytes, int(length)))

    # ---- steps ----
    def _authenticate(self, request) -> str:
        """The name of the caller's valid key; anyone else is refused here (401) and goes no further."""
        secret = _presented_key(request.headers)
        digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest() if secret else b""
        for known, name in self.key_digests.items():
            if hmac.compare_digest(digest, known):
                request.api_key_name = name
                return name
        raise Refusal(PinpointError("a valid API key is required (Authorization: Bearer KEY or X-API-Key)",
                                    code="unauthorized"), {"WWW-Authenticate": 'Bearer realm="pinpoint"'})

    def _limit(self, key_name: str | None, request) -> None:
        rate, burst = self.settings.rate_limit_per_s, self.settings.rate_limit_burst
        if key_name is not None:
            rate, burst = self.settings.rate_limit_keys.get(key_name, (rate, burst))
            client = f"key:{key_name}"
        else:
            client = f"ip:{self.client_ip(request)}"
        decision = self.buckets.take(client, rate, burst)
        headers = {"RateLimit-Limit": str(decision.limit), "RateLimit-Remaining": str(decision.remaining),
                   "RateLimit-Reset": str(math.ceil(decision.reset_s))}
        if decision.allowed:
            cherrypy.serving.response.headers.update(headers)
            return
        if self.on_refused is not None:
            self.on_refused()
        log.info("rate_limited", client=client, request_id=getattr(request, "request_id", None))
        raise Refusal(PinpointError(f"rate limit exceeded: {rate:g} requests/s, bursts of {burst}",
                                    code="rate_limited", retry_after=decision.retry_after_s), headers)

    def client_ip(self, request) -> str:
        """The remote address, or the first untrusted hop of X-Forwarded-For when a trusted proxy sent it."""
        address = request.remote.ip
        if not self.proxies or not self._trusted(address):
            return address
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        for hop in reversed(hops):  # the right end was added by the proxies nearest to us
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else address

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)


def _presented_key(headers) -> str | None:
    authorization = headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("X-API-Key") or None


def _is_api(path: str) -> bool:
    return path.startswith(("/v1/", "/v2/")) or path in ("/v1", "/v2")


def guarded(path: str) -> bool:
    """Whether a request to `path` needs an API key (when keys are set) and spends a rate-limit token."""
    return path not in OPEN_PATHS and _is_api(path)


def install(guard: Guard) -> None:
    # Before the methods tool (15): without a key, no 404 or 405 tells which /v1 routes exist.
    cherrypy.tools.guard = cherrypy.Tool("on_start_resource", guard.check, priority=12)
    cherrypy.tools.body_limit = cherrypy.Tool("before_request_body", guard.limit_body, priority=20)
