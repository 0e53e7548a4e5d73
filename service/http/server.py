"""The HTTP server beneath CherryPy: waitress, which reads whole requests before a thread sees them.

CherryPy stays the framework (its application is a WSGI callable); the server under it is waitress,
chosen because it already does what a server facing slow or abusive clients must: one event loop
reads every connection's request line, headers and body, and only a complete request reaches one of
the `threads` worker threads. A client that connects and stays silent, trickles its headers, or sends
its body a byte at a time costs a socket and a few KB, never a thread. Bodies larger than
`spool_body_bytes` are spooled to a temporary file while they arrive, not held in memory.

What Pinpoint adds to waitress, by concern:
- deadlines (here, with service/http/connection.py): a request's line and headers must arrive within
  `header_timeout_s` (from connecting, or from the first byte of a kept-alive connection's next
  request), and its body must keep up an average of `min_body_rate` bytes/s after that much grace;
  otherwise 408 and the connection is closed. An idle kept-alive connection is closed after
  `socket_timeout`. All enforced by the event loop twice a second.
- framing refused as the contract's JSON error, with a request id and `Connection: close`
  (service/http/framing.py); a body cut off by the client is answered 400 (service/http/connection.py).
- a refusal that leaves a request's body unread closes the connection (a POST without Content-Length is
  answered 411 and closed: its "body" is never read as the next request); a `Connection: close` the
  application sets is honoured (waitress takes hop-by-hop headers from the server only).
- any error answer of CherryPy's that is not JSON (its HTML pages) becomes the contract's JSON (here).
- drain on stop (SIGTERM, here): stop accepting (after taking in what already sits in the listen
  backlog); requests being read or served finish and their answers say `Connection: close`; an idle
  kept-alive connection gets half a second in which a next request is still answered (with
  `Connection: close`), then is closed with a FIN, unread input drained first, so nothing accepted is
  reset; whatever remains at `drain_timeout_s` is closed.
- memory: large allocations are returned to the system (service/http/memory.py), so a worker's RSS
  falls back after an upload storm.

Workers of `pinpoint serve` with `workers = N` serve the socket the supervisor bound, passed as file
descriptor 3 with LISTEN_PID set (service/processes/supervisor.py), and listen for new connections
only while no other worker holds fewer (service/processes/connection_share.py); otherwise this binds
its own.
"""

from __future__ import annotations

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
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from service.http import memory
from service.http.api.error_responses import JSON, foreign, payload
from service.http.connection import Connection
from service.http.framing import MAX_HEADER_BYTES, REASONS
from service.processes.connection_share import HELD_BACK_S, ConnectionShare

log = structlog.get_logger("pinpoint.access")
LISTEN_FD = 3  # systemd's first passed descriptor (service/processes/supervisor.py passes its socket there)
MAX_CONNECTIONS = 4000  # open at once per process; beyond it new ones wait in the listen backlog
TICK_S = 0.25  # the event loop wakes at least this often: deadlines, drain
# What one read takes from a connection. waitress's 8 KB made the bench's 12 MP photo (1.5 MB) ~180 turns of
# the event loop (each polling every connection, and appending to the spooled body); now what has arrived is
# read at once.
RECV_BYTES = 256 * 1024
IDLE_GRACE_S = 0.3  # on drain, how long an idle kept-alive connection may still send a next request
IDLE_LINGER_S = 0.2  # closing an idle connection: how long a request that crossed our FIN is read and dropped


class _Server(TcpWSGIServer):
    channel_class = Connection

    def __init__(self, application, owner: HTTPServer, share: ConnectionShare | None, **kwargs):
        self.owner, self.share = owner, share
        self.held_back = False  # another worker holds fewer connections: it takes the next one
        self.held_back_tick = HELD_BACK_S  # how long the event loop waits while held back (it doubles)
        super().__init__(application, **kwargs)

    def maintenance(self, now):  # waitress calls it from the loop, every cleanup_interval
        self.owner.check_deadlines()

    def readable(self):  # asked before every wait of the event loop: listen for new connections now?
        return super().readable() and not self.held_back  # as next_wait() decided, just before

    def handle_accept(self):
        super().handle_accept()
        if self.share is not None:  # say so at once: the other workers are deciding too
            self._decide_listening()

    def _decide_listening(self) -> None:
        held_back = self.accepting and not self.share.may_accept(len(self.active_channels))
        if not held_back:
            self.held_back_tick = HELD_BACK_S
        elif not self.held_back:
            self.share.wake_others()  # this worker stops listening: the one that may take the next, look now
        self.held_back = held_back

    def next_wait(self) -> float:
        """Before each wait of the event loop: whether it listens for new connections this time, and how
        long it may wait (a tick; less while held back, so it sees the others catch up)."""
        if self.share is not None:
            self._decide_listening()
        if not self.held_back:
            return TICK_S
        wait, self.held_back_tick = self.held_back_tick, min(TICK_S, 2 * self.held_back_tick)
        return wait


class _WakeUp(wasyncore.dispatcher):
    """Another worker's poke (service/processes/connection_share.py): it wakes the event loop, which then
    looks at the table again before it waits."""

    def readable(self):
        return True

    def writable(self):
        return False

    def handle_read(self):
        try:
            while self.socket.recv(64):
                pass
        except OSError:
            pass


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
        memory.return_large_allocations()
        settings = self.settings
        self.socket = self._listener()
        adj = Adjustments(
            sockets=[self.socket], threads=settings.threads, backlog=512, connection_limit=MAX_CONNECTIONS,
            channel_timeout=max(settings.socket_timeout, settings.header_timeout_s) + 3600,  # ours decide
            cleanup_interval=TICK_S, asyncore_loop_timeout=TICK_S, asyncore_use_poll=True, recv_bytes=RECV_BYTES,
            max_request_header_size=MAX_HEADER_BYTES, max_request_body_size=settings.max_body_bytes + 1,
            inbuf_overflow=settings.spool_body_bytes, clear_untrusted_proxy_headers=False, ident="Pinpoint",
            expose_tracebacks=False, log_socket_errors=False, url_scheme="http")
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        share = ConnectionShare.of_this_worker()
        if share is not None:
            _WakeUp(share.wake_socket, self._map)
        self._server = _Server(self.app, self, share, map=self._map, _sock=self.socket, dispatcher=dispatcher, adj=adj,
                               bind_socket=False, sockinfo=(self.socket.family, self.socket.type,
                                                            self.socket.proto, self.socket.getsockname()))
        self.ready = True
        try:
            while not self._stopped.is_set():
                # Held back, a worker looks again soon (and at once when another worker pokes it): it is the
                # next to take a connection once the others have caught up.
                wasyncore.loop(timeout=self._server.next_wait(), map=self._map, use_poll=True, count=1)
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
            memory.trim()
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
        try:
            self._server.pull_trigger()  # at once; the loop also looks at least every TICK_S on its own
        except OSError as error:
            # Its trigger is closed: the loop has ended, closing its channels, and is about to say so
            # (seen once in a fresh-clone run, a stop racing the end of the loop). Nothing to wake.
            log.warning("http_trigger_closed", error=error.strerror, loop_running=not self._stopped.is_set())
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
            if server.share is not None:
                server.share.leave()
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
                channel.handle_close() if isinstance(channel, Connection) else channel.close()
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
                status = f"{number} {REASONS.get(number, 'Error')}"
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


logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth": our metrics say it
