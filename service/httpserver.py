"""CherryPy's HTTP server (cheroot), with connections that have sent nothing kept off the workers.

cheroot hands every newly accepted connection straight to a worker thread, which then blocks reading
the request line until the socket timeout: a few hundred clients that connect and stay silent hold
every worker, and nobody else is served. Kept-alive connections, on the other hand, wait in cheroot's
selector and reach a worker only once they have data. This server treats new connections the same
way; the selector closes those that stay silent past the socket timeout.

cheroot also answers malformed HTTP itself, before CherryPy sees a request (a bad request line, headers
over max_request_header_size, an HTTP version other than 1.x), in plain text: here those answers are
the contract's JSON error too, with a request id (docs/api.md).
"""

from __future__ import annotations

import socket
import uuid

import structlog
from cheroot import connections, errors, server
from cherrypy._cpwsgi_server import CPWSGIHTTPRequest, CPWSGIServer

from service.api.errors import foreign, payload
from service.errors import round_size

log = structlog.get_logger("pinpoint.access")

# cheroot's words -> ours, where its own say less than the contract wants (the numbers, what to do).
_MESSAGES = {
    408: "the request did not arrive in full within the socket timeout ({timeout:g} s)",
    413: "the request line and headers pass the limit of {header_limit}",
    414: "the request line passes the limit of {header_limit}",
    501: "the only Transfer-Encoding accepted is chunked",
    505: "this server speaks HTTP/1.0 and HTTP/1.1 only",
}


class _Request(CPWSGIHTTPRequest):
    def simple_response(self, status, msg=""):
        """cheroot's plain-text answer to what it refuses, as the contract's JSON (same statuses)."""
        number = int(str(status)[:3])
        message = _MESSAGES.get(number, msg or str(status)[4:]).format(
            timeout=self.server.timeout, header_limit=round_size(self.server.max_request_header_size))
        number, code, message = foreign(number, message)
        if number in (413, 414) and self.response_protocol != "HTTP/1.1":
            number, code = 400, "bad_request"  # as cheroot does: HTTP/1.0 has neither status
        body = payload(message, code)
        request_id = uuid.uuid4().hex
        self.close_connection = True  # cheroot closes after each of these answers; say so
        head = (f"{self.server.protocol} {number} {_REASONS.get(number, 'Error')}\r\n"
                f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n")
        log.info("request", request_id=request_id, status=number, code=code, error=message,
                 client=_peer(self.conn), refused_by="http_server")
        try:
            self.conn.wfile.write(head.encode("ISO-8859-1") + body)
        except socket.error as ex:
            if ex.args[0] not in errors.socket_errors_to_ignore:
                raise


_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout", 413: "Request Entity Too Large",
            414: "Request-URI Too Long", 500: "Internal Server Error", 501: "Not Implemented",
            503: "Service Unavailable", 505: "HTTP Version Not Supported"}


def _peer(conn) -> str | None:
    try:
        return conn.socket.getpeername()[0]
    except (OSError, IndexError, TypeError):
        return None


class _Connection(server.HTTPConnection):
    RequestHandlerClass = _Request


class _WaitForData(connections.ConnectionManager):
    def _from_server_socket(self, server_socket):
        conn = super()._from_server_socket(server_socket)
        if conn is not None:
            self.put(conn)  # into the selector; a worker takes it once it is readable
        return None


class HTTPServer(CPWSGIServer):
    ConnectionClass = _Connection
    # Connections parked in the selector (new or kept alive) before cheroot stops keeping any alive.
    keep_alive_conn_limit = 500

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _Connection.RequestHandlerClass = _Request  # CherryPy's __init__ set its own on the class

    def prepare(self):
        super().prepare()
        # prepare() built the stock manager; nothing is registered with it yet but the listening socket.
        stock = self._connections
        self._connections = _WaitForData(self)
        stock._selector.close()
