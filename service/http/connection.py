"""One client connection of the HTTP server (service/http/server.py): waitress's channel and task, timed
and closed gently.

- deadlines: the connection knows when its request began and when its head was complete, so the event
  loop can say what it kept too long (`overdue`): its head, its body (an average rate), or an idle
  kept-alive wait; the loop then answers 408 itself (`answer`) or closes.
- a refusal that leaves a request's body unread closes the connection with a FIN, not a reset
  (`close_gently`): what the client still sends is read and dropped first, so the answer reaches it.
  A client that ends its side before its declared body is answered 400.
- the head and the first bytes of the body leave in one send.
"""

from __future__ import annotations

import socket
import time
import uuid

import structlog
from waitress.channel import HTTPChannel
from waitress.task import WSGITask

from service.http import memory
from service.http.api.error_responses import JSON, payload
from service.http.framing import REASONS, Parser, RefusalTask

log = structlog.get_logger("pinpoint.access")
LINGER_S = 2.0  # after a refusal, how long what the client still sends is read and dropped before closing
TRIM_AFTER_BYTES = 1 << 20  # hand freed heap back to the system after a request body this large
TRIM_AGAIN_S = 0.5  # ... and again this long after the last such body (other threads held some then)


class Task(WSGITask):
    """One request served on a worker thread: waitress's, with its connection in the WSGI environ (so the
    application's `Connection: close` reaches it) and the heap trimmed after a large body."""

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
                memory.trim()
                # and once more when the storm is over: what other threads still held just now
                self.channel.server.owner.trim_due = time.monotonic() + TRIM_AGAIN_S


class Connection(HTTPChannel):
    """One connection: waitress's, timed (when its request began, when its head was complete)."""

    parser_class = Parser
    error_task_class = RefusalTask
    task_class = Task
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
        data = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {JSON}\r\n"
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
