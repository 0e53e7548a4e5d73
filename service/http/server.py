"""The HTTP server beneath CherryPy: waitress, which reads whole requests before a thread sees them.

CherryPy stays the framework (its application is a WSGI callable); the server under it is waitress,
chosen because it already does what a server facing slow or abusive clients must: one event loop
reads every connection's request line, headers and body, and only a complete request reaches one of
the `threads` worker threads. A client that connects and stays silent, trickles its headers, or sends
its body a byte at a time costs a socket and a few KB, never a thread. Bodies larger than
`spool_body_bytes` are spooled to a temporary file while they arrive, not held in memory.

What this module adds to waitress:
- deadlines: a request's line and headers must arrive within `header_timeout_s` (from connecting, or
  from the first byte of a kept-alive connection's next request), and its body must keep up an average
  of `min_body_rate` bytes/s after that much grace; otherwise 408 and the connection is closed. An idle
  kept-alive connection is closed after `socket_timeout`. All enforced by the event loop twice a second.
- framing refused as the contract's JSON error (docs/api.md), with a request id and `Connection: close`:
  malformed request lines and headers (a header line starting with whitespace included), HTTP/1.1
  without Host, HTTP versions other than 1.x, bad or oversized chunk sizes, a Transfer-Encoding other
  than a single chunked (`chunked, chunked` too), Transfer-Encoding with Content-Length, a body cut off
  by the client, heads over 500 KB, bodies over `max_body_bytes` (from Content-Length at once, or as a
  chunked body passes the limit).
- a refusal that leaves a request's body unread closes the connection (a POST without Content-Length is
  answered 411 and closed: its "body" is never read as the next request); a `Connection: close` the
  application sets is honoured (waitress takes hop-by-hop headers from the server only).
- any error answer of CherryPy's that is not JSON (its HTML pages) becomes the contract's JSON.
- drain on stop (SIGTERM): stop accepting (after taking in what already sits in the listen backlog);
  requests being read or served finish and their answers say `Connection: close`; an idle kept-alive
  connection gets half a second in which a next request is still answered (with `Connection: close`),
  then is closed with a FIN, unread input drained first, so nothing accepted is reset; whatever remains
  at `drain_timeout_s` is closed.
- memory: large allocations are returned to the system (glibc's mmap threshold pinned, the heap
  trimmed after a large body), so a worker's RSS falls back after an upload storm.

Workers of `pinpoint serve` with `workers = N` serve the socket the supervisor bound, passed as file
descriptor 3 with LISTEN_PID set (service/processes/supervisor.py); otherwise this binds its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import socket
import threading
import time
import uuid

import structlog
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import BadRequest, RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from service.http.api.error_responses import INTERNAL, JSON, foreign, payload
from service.errors import body_too_large, round_size

log = structlog.get_logger("pinpoint.access")
LISTEN_FD = 3  # systemd's first passed descriptor (service/processes/supervisor.py passes the shared socket there)
MAX_HEADER_BYTES = 500 * 1024  # request line and headers, as cheroot's (and the contract's) 500 KB
MAX_CONNECTIONS = 4000  # open at once per process; beyond it new ones wait in the listen backlog
TICK_S = 0.25  # the event loop wakes at least this often: deadlines, drain
IDLE_GRACE_S = 0.3  # on drain, how long an idle kept-alive connection may still send a next request
IDLE_LINGER_S = 0.2  # closing an idle connection: how long a request that crossed our FIN is read and dropped
LINGER_S = 2.0  # after a refusal, how long what the client still sends is read and dropped before closing
TRIM_AFTER_BYTES = 1 << 20  # hand freed heap back to the system after a request body this large
TRIM_AGAIN_S = 0.5  # ... and again this long after the last such body (other threads held some then)

_REASONS = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 411: "Length Required",
            413: "Request Entity Too Large", 500: "Internal Server Error", 501: "Not Implemented",
            503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class _Refused(Exception):
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


class _Parser(HTTPRequestParser):
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
            raise _Refused(400, "Malformed Request-Line")
        if self.version not in ("1.0", "1.1"):
            raise _Refused(505, "this server speaks HTTP/1.0 and HTTP/1.1 only")
        if self.version == "1.1" and not self.headers.get("HOST", "").strip():
            raise _Refused(400, "HTTP/1.1 requires a Host header")
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise _Refused(400, "Transfer-Encoding and Content-Length together are refused")
        if self.chunked and self.codings > 1:
            raise _Refused(400, "chunked may be applied once only")

    def received(self, data):
        try:
            consumed = super().received(data)
        except _Refused as refused:  # from parse_header: the head is complete, the request refused
            self.error, self.completed, self.headers_finished = refused, True, True
            return len(data)
        if self.error is None and self.chunked and not self.completed:
            limit = self.adj.max_request_body_size - 1  # waitress refuses at >= its setting
            if self.body_rcv.chunk_remainder + self.body_bytes_received > limit:  # a chunk size says so at once
                self.error = _Refused(413, body_too_large(limit).message, "payload_too_large")
                self.completed = True
        return consumed


class _ErrorTask(ErrorTask):
    """waitress's refusals of malformed HTTP, as the contract's JSON with a request id; the connection closes."""

    def execute(self):
        error, request = self.request.error, self.request
        status, code, message = _describe(error, request, self.channel.adj)
        body = payload(message, code)
        request_id = uuid.uuid4().hex
        self.status = f"{status} {_REASONS.get(status, 'Error')}"
        self.response_headers.extend([("Content-Type", JSON), ("Content-Length", str(len(body))),
                                      ("X-Request-ID", request_id)])
        self.set_close_on_finish()
        self.content_length = len(body)
        log.info("request", request_id=request_id, status=status, code=code, error=message,
                 client=self.channel.addr[0] if self.channel.addr else None, refused_by="http_server")
        self.write(body)


def _describe(error, request, adj) -> tuple[int, str, str]:
    if isinstance(error, _Refused):
        return error.code, error.contract_code, error.message
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return 413, "payload_too_large", f"the request line and headers pass the limit of {round_size(MAX_HEADER_BYTES)}"
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


class _Task(WSGITask):
    def write(self, data):
        """waitress's, except that the head and the first bytes of the body leave in one send (waitress
        sends the head alone first: a packet and a client wake-up more for every answer)."""
        if self.wrote_header or not self.complete:
            return super().write(data)
        head = self.build_response_header()
        self.wrote_header = True
        body = b""
        if data and self.has_body:
            if self.chunked_response:
                body = b"%X\r\n%s\r\n" % (len(data), data)
            elif self.content_length is not None:
                body = data[:self.content_length - self.content_bytes_written]
                self.content_bytes_written += len(body)
            else:
                body = data
        elif data:
            self.content_bytes_written += len(data)
        self.channel.write_soon(head + body)

    def get_environment(self):
        environ = super().get_environment()
        environ["pinpoint.task"] = self
        return environ

    def service(self):
        try:
            super().service()
        finally:
            if self.request.content_length >= TRIM_AFTER_BYTES or self.request.chunked:
                _trim()
                # and once more when the storm is over: what other threads still held just now
                self.channel.server.owner.trim_due = time.monotonic() + TRIM_AGAIN_S


class _Channel(HTTPChannel):
    """One connection: waitress's, timed (when its request began, when its head was complete)."""

    parser_class = _Parser
    error_task_class = _ErrorTask
    task_class = _Task
    started = None  # monotonic: when the request being read began (connect time for a connection's first)
    head_done = None  # when that request's line and headers were complete
    served = 0  # requests answered on this connection
    idle_since = None  # on drain: when it was found idle
    linger_until = None  # closing gently: our side is shut; reading what is left until EOF or then

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)
        self.started = time.monotonic()

    def received(self, data):
        if self.request is None and self.started is None:
            self.started = time.monotonic()
        result = super().received(data)
        request = self.request
        if request is None:
            self.started = self.head_done = None
        elif request.headers_finished and self.head_done is None:
            self.head_done = time.monotonic()
        return result

    def readable(self):
        return True if self.linger_until is not None else super().readable()

    def writable(self):
        return self.will_close if self.linger_until is not None else super().writable()

    def handle_write(self):
        if self.linger_until is None and self.close_when_flushed and not self.requests and not self.will_close:
            # waitress's, except that the connection ends with a gentle close: an answer that refused a
            # request whose rest is still arriving must reach the client, not be lost to a reset.
            self._flush_exception(self._flush_some)
            if not self.total_outbufs_len and not self.will_close:
                self.close_when_flushed = False
                self.close_gently(LINGER_S)
            elif self.will_close:
                self.handle_close()
            return
        super().handle_write()

    def handle_read(self):
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except BlockingIOError:
            return
        except OSError:
            self.handle_close()
            return
        if self.linger_until is not None:
            if not data or time.monotonic() > self.linger_until:
                self.handle_close()
            return  # what a closing connection still sends is read and dropped
        if data:
            self.last_activity = time.time()
            self.received(data)
        elif self.request is not None and self.request.headers_finished and not self.requests:
            # The client ended its side before its body was complete: say so, then close.
            self.answer(400, "bad_request", "the request body ended before its declared end")
        else:
            self.handle_close()

    def service(self):
        super().service()
        self.served += 1

    # ---- the event loop's checks ----
    def overdue(self, now: float, settings) -> str | None:
        """What this connection has kept too long, if anything: 'head', 'body' or 'idle'."""
        if self.linger_until is not None:
            return "linger" if now > self.linger_until else None
        if self.requests or self.will_close or self.close_when_flushed:
            return None  # being served (the application's time is not the client's), or closing
        request = self.request
        if request is None and self.served:
            idle_for = time.time() - self.last_activity
            return "idle" if idle_for > settings.socket_timeout else None
        if request is None or not request.headers_finished:
            begun = self.started if self.started is not None else now
            return "head" if now - begun > settings.header_timeout_s else None
        elapsed = now - self.head_done - settings.header_timeout_s  # the same time again as grace
        if elapsed > 0 and request.body_bytes_received < settings.min_body_rate * elapsed:
            return "body"
        return None

    def answer(self, status: int, code: str, message: str) -> None:
        """An answer the event loop writes itself (no task runs on this connection); then it closes."""
        body = payload(message, code)
        request_id = uuid.uuid4().hex
        data = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {JSON}\r\n"
                f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
                ).encode("latin-1") + body
        log.info("request", request_id=request_id, status=status, code=code, error=message,
                 client=self.addr[0] if self.addr else None, refused_by="http_server")
        with self.requests_lock:
            if self.request is not None:
                self.request.close()
            self.request = None
            self.close_when_flushed = True  # writable: the loop sends it, then closes
        with self.outbuf_lock:
            self.outbufs[-1].append(data)
            self.total_outbufs_len += len(data)
            self.current_outbuf_count += len(data)

    def close_gently(self, linger_s: float = LINGER_S) -> None:
        """Close with a FIN, not a reset: shut our side, read what the client still sends until it
        closes too (or linger_s), then close. Closing with unread input would reset the connection."""
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            self.will_close = True
            return
        self.linger_until = time.monotonic() + linger_s

    def idle(self) -> bool:
        return not (self.request is not None or self.requests or self.total_outbufs_len
                    or self.close_when_flushed or self.will_close or self.linger_until is not None)


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, application, owner: HTTPServer, **kwargs):
        self.owner = owner
        super().__init__(application, **kwargs)

    def maintenance(self, now):  # waitress calls it from the loop, every cleanup_interval
        self.owner.check_deadlines()


class HTTPServer:
    """What CherryPy's ServerAdapter drives: `start()` serves until `stop()`; `ready` once listening."""

    def __init__(self, server_adapter, settings, bus=None):
        import cherrypy

        self.settings = settings
        self.bind_addr = server_adapter.bind_addr
        self.app = _application(cherrypy.tree, self)
        self.ready = False
        self.draining = False
        self.socket = None
        self._server: _Server | None = None
        self._map: dict = {}
        self._stopped = threading.Event()
        self._drain_deadline = None
        self._closed_at_deadline = 0
        self.trim_due = None  # when the event loop hands freed heap back once more (after large bodies)
        if bus is not None:
            from service.http.plugin import SETTINGS

            bus.subscribe(SETTINGS, self.configure)

    def __str__(self):
        return f"waitress on {self.bind_addr}"

    def configure(self, settings) -> None:
        """A reload (SIGHUP): the new limits apply to requests that start from now on."""
        self.settings = settings
        if self._server is not None:
            self._server.adj.max_request_body_size = settings.max_body_bytes + 1

    def _listener(self) -> socket.socket:
        if os.environ.get("LISTEN_PID"):
            return socket.socket(fileno=os.dup(LISTEN_FD))
        from service.processes.supervisor import listen

        return listen(self.settings)

    def start(self) -> None:
        _return_large_allocations()
        settings = self.settings
        self.socket = self._listener()
        adj = Adjustments(
            sockets=[self.socket], threads=settings.threads, backlog=512, connection_limit=MAX_CONNECTIONS,
            channel_timeout=max(settings.socket_timeout, settings.header_timeout_s) + 3600,  # ours decide
            cleanup_interval=TICK_S, asyncore_loop_timeout=TICK_S, asyncore_use_poll=True,
            max_request_header_size=MAX_HEADER_BYTES, max_request_body_size=settings.max_body_bytes + 1,
            inbuf_overflow=settings.spool_body_bytes, clear_untrusted_proxy_headers=False, ident="Pinpoint",
            expose_tracebacks=False, log_socket_errors=False, url_scheme="http")
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        self._server = _Server(self.app, self, map=self._map, _sock=self.socket, dispatcher=dispatcher, adj=adj,
                               bind_socket=False, sockinfo=(self.socket.family, self.socket.type,
                                                            self.socket.proto, self.socket.getsockname()))
        self.ready = True
        try:
            while not self._stopped.is_set():
                wasyncore.loop(timeout=TICK_S, map=self._map, use_poll=True, count=1)
                if self.draining and self._drain_step():
                    break
        except Exception:
            log.exception("http_server_failed")
            raise
        finally:
            self._close_all()
            self.ready = False
            self._stopped.set()

    def check_deadlines(self) -> None:
        settings, now = self.settings, time.monotonic()
        if self.trim_due is not None and now >= self.trim_due:
            # A refused body can outlive its request in a reference cycle (an exception's traceback and
            # the frames that held the bytes) until the collector runs: run it, then trim.
            self.trim_due = None
            gc.collect()
            _trim()
        for channel in list(self._server.active_channels.values()):
            reason = channel.overdue(now, settings)
            if reason == "head":
                channel.answer(408, "bad_request",
                                f"the request line and headers did not arrive within {settings.header_timeout_s:g} s")
            elif reason == "body":
                channel.answer(408, "bad_request", f"the request body arrived slower than "
                                                    f"{settings.min_body_rate:,} bytes/s")
            elif reason == "idle":
                channel.close_gently(IDLE_LINGER_S)
            elif reason == "linger":
                channel.will_close = True

    # ---- drain ----
    def stop(self) -> None:
        """Stop accepting, let what was accepted finish (up to drain_timeout_s), then close; blocks."""
        if self._server is None or self._stopped.is_set():
            self._stopped.set()
            return
        started = time.monotonic()
        self._drain_deadline = started + self.settings.drain_timeout_s
        open_before = len(self._server.active_channels)
        self.draining = True
        self._server.pull_trigger()
        drained = self._stopped.wait(self.settings.drain_timeout_s + 0.5)
        self._stopped.set()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=0.2)
        log.info("http_drained", seconds=round(time.monotonic() - started, 3), connections=open_before,
                 closed_at_deadline=self._closed_at_deadline, in_time=drained)

    def _drain_step(self) -> bool:
        """One turn of the drain, on the event loop's thread; True once nothing is left to wait for."""
        server = self._server
        if server.accepting:
            server.accepting = False
            self._take_backlog()
            server.del_channel()
            self.socket.close()  # our copy: other workers (and the supervisor) keep theirs
        self.check_deadlines()
        now = time.monotonic()
        channels = list(server.active_channels.values())
        for channel in channels:
            if channel.idle():
                if channel.idle_since is None:
                    channel.idle_since = now
                elif now - channel.idle_since > IDLE_GRACE_S:
                    channel.close_gently(IDLE_LINGER_S)
            else:
                channel.idle_since = None
        return not server.active_channels or now > self._drain_deadline

    def _take_backlog(self) -> None:
        """Connections the kernel already accepted for us: served once (Connection: close), not reset."""
        self.socket.setblocking(False)
        while True:
            try:
                conn, addr = self.socket.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._server.channel_class(self._server, conn, addr, self._server.adj, map=self._map)

    def _close_all(self) -> None:
        self._closed_at_deadline = len(self._server.active_channels) if self._server else 0
        for channel in list(self._map.values()):
            try:
                channel.handle_close() if isinstance(channel, _Channel) else channel.close()
            except OSError:
                pass


def _application(app, server: HTTPServer):
    """The WSGI callable waitress runs: CherryPy's, with what belongs to the connection kept here."""

    def wsgi(environ, start_response):
        task = environ.pop("pinpoint.task", None)
        replaced = []

        def start(status, headers, exc_info=None):
            close = server.draining or status.startswith("411")
            kept = []
            for name, value in headers:
                lower = name.lower()
                if lower == "connection":
                    close = close or "close" in value.lower()
                elif lower not in _HOP_BY_HOP:
                    kept.append((name, value))
            number = int(status[:3])
            if number >= 400 and not any(n.lower() == "content-type" and "json" in v for n, v in kept):
                number, code, message = foreign(number, status[4:] or "error")
                body = payload(message, code)
                replaced.append(body)
                request_id = next((v for n, v in kept if n.lower() == "x-request-id"), uuid.uuid4().hex)
                status = f"{number} {_REASONS.get(number, 'Error')}"
                kept = [("Content-Type", JSON), ("Content-Length", str(len(body))), ("X-Request-ID", request_id)]
                close = True
            write = start_response(status, kept, exc_info)
            if close and task is not None:
                task.set_close_on_finish()
            return write

        result = app(environ, start)
        if replaced:
            if hasattr(result, "close"):
                result.close()
            return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else replaced
        return result

    return wsgi


_HOP_BY_HOP = {"keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "server"}

# ---- memory: glibc keeps freed heap unless told otherwise ----
_libc = None


def _return_large_allocations() -> None:
    """Pin glibc's mmap threshold at 256 KB: buffers that large (bodies, decoded images) are mapped and
    unmapped, rather than left in a heap that only grows (the threshold otherwise rises to 32 MB)."""
    global _libc
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
        _libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
        _libc.mallopt(-8, 4)  # M_ARENA_MAX: fewer per-thread heaps, less memory stranded between them
    except (OSError, AttributeError):
        _libc = None  # not glibc: nothing to tune


def _trim() -> None:
    if _libc is not None:
        try:
            _libc.malloc_trim(0)
        except AttributeError:
            pass


logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth": our metrics say it
