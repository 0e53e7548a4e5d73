"""Framing: what is refused while a request is read, before a thread or CherryPy sees it.

waitress's request parser with the checks HTTP's framing rules ask of a server that must not be
smuggled past (RFC 9112 §6), and every refusal, waitress's or ours, answered as the contract's JSON
error (docs/api.md) with a request id and `Connection: close`: malformed request lines and headers (a
header line starting with whitespace included), HTTP/1.1 without Host, HTTP versions other than 1.x,
bad or oversized chunk sizes, a Transfer-Encoding other than a single chunked (`chunked, chunked` too),
Transfer-Encoding with Content-Length, heads over 500 KB, bodies over `max_body_bytes` (from
Content-Length at once, or as a chunked body passes the limit).
"""

from __future__ import annotations

import uuid

import structlog
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask
from waitress.utilities import BadRequest, RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from service.errors import body_too_large, round_size
from service.http.api.error_responses import INTERNAL, JSON, foreign, payload

log = structlog.get_logger("pinpoint.access")
MAX_HEADER_BYTES = 500 * 1024  # request line and headers, as cheroot's (and the contract's) 500 KB

REASONS = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 411: "Length Required",
           413: "Request Entity Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class Refused(Exception):
    """A refusal decided here: (status, code, message) of the contract, carried as the parser's error."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.code, self.message, self.body = status, message, message
        self.contract_code = code or foreign(status, message)[1]


# waitress's words for what it refuses -> ours (its own may quote the client's bytes back)
_PARSING = (("Start line", "Malformed Request-Line"), ("HTTP message header invalid", "Malformed Request-Line"),
            ("Malformed HTTP method", "Malformed Request-Line"),
            ("Malformed header line", "a header line starts with whitespace before any header"),
            ("Bare CR or LF", "a bare CR or LF in the request head"), ("Invalid header", "a malformed header line"),
            ("Content-Length is invalid", "Content-Length is not a number"),
            ("Invalid chunk size", "a chunk size is not a hexadecimal number"),
            ("Invalid chunk extension", "a malformed chunk extension"),
            ("Chunk not properly terminated", "a chunk is not terminated by CRLF where its size says"))


class Parser(HTTPRequestParser):
    """waitress's request parser with the checks HTTP's framing rules ask of a server that must not be
    smuggled past (RFC 9112 §6): one chunked coding only, never with Content-Length, chunk sizes within
    the body limit, Host on HTTP/1.1, a version it speaks."""

    codings = 0  # transfer codings named (waitress pops the header; `chunked, chunked` is refused)

    def parse_header(self, header_plus):
        for line in header_plus.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding":
                self.codings += len([coding for coding in value.split(b",") if coding.strip()])
        super().parse_header(header_plus)
        if not self.version:
            raise Refused(400, "Malformed Request-Line")
        if self.version not in ("1.0", "1.1"):
            raise Refused(505, "this server speaks HTTP/1.0 and HTTP/1.1 only")
        if self.version == "1.1" and not self.headers.get("HOST", "").strip():
            raise Refused(400, "HTTP/1.1 requires a Host header")
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise Refused(400, "Transfer-Encoding and Content-Length together are refused")
        if self.chunked and self.codings > 1:
            raise Refused(400, "chunked may be applied once only")

    def received(self, data):
        try:
            consumed = super().received(data)
        except Refused as refused:  # from parse_header: the head is complete, the request refused
            self.error, self.completed, self.headers_finished = refused, True, True
            return len(data)
        if self.error is None and self.chunked and not self.completed:
            limit = self.adj.max_request_body_size - 1  # waitress refuses at >= its setting
            if self.body_rcv.chunk_remainder + self.body_bytes_received > limit:  # a chunk size says so at once
                self.error = Refused(413, body_too_large(limit).message, "payload_too_large")
                self.completed = True
        return consumed


class RefusalTask(ErrorTask):
    """waitress's refusals of malformed HTTP, as the contract's JSON with a request id; the connection closes."""

    def execute(self):
        error, request = self.request.error, self.request
        status, code, message = describe_refusal(error, request, self.channel.adj)
        body = payload(message, code)
        request_id = uuid.uuid4().hex
        self.status = f"{status} {REASONS.get(status, 'Error')}"
        self.response_headers.extend([("Content-Type", JSON), ("Content-Length", str(len(body))),
                                      ("X-Request-ID", request_id)])
        self.set_close_on_finish()
        self.content_length = len(body)
        log.info("request", request_id=request_id, status=status, code=code, error=message,
                 client=self.channel.addr[0] if self.channel.addr else None, refused_by="http_server")
        self.write(body)


def describe_refusal(error, request, adj) -> tuple[int, str, str]:
    if isinstance(error, Refused):
        return error.code, error.contract_code, error.message
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return 413, "payload_too_large", \
            f"the request line and headers pass the limit of {round_size(MAX_HEADER_BYTES)}"
    if isinstance(error, RequestEntityTooLarge):
        limit = adj.max_request_body_size - 1
        length = None if request.chunked else request.content_length
        return 413, "payload_too_large", body_too_large(limit, length).message
    if error.code == 501:
        return 501, "bad_request", "the only Transfer-Encoding accepted is chunked"
    if isinstance(error, BadRequest):
        detail = str(error.body or "")
        message = next((ours for theirs, ours in _PARSING if detail.startswith(theirs)), "a malformed request")
        return 400, "bad_request", message
    status, code, message = foreign(int(error.code), INTERNAL)
    return status, code, message
