"""The hop between API workers and the model runner: calls over a Unix socket.

multiprocessing.connection does the framing (length-prefixed pickles; numpy arrays travel as their
buffers) and the handshake (an HMAC challenge on a shared secret, so no other local process can
talk to the runner). Each worker thread keeps its own connection, so calls never wait on one another;
the runner serves each connection on a thread of its own.
"""

from __future__ import annotations

import os
import threading
from multiprocessing import connection
from typing import Any, Callable

import structlog

from service.errors import ModelUnavailable, PinpointError

log = structlog.get_logger("pinpoint.ipc")
SECRET_ENV = "PINPOINT_RUNNER_SECRET"


class RunnerGone(ModelUnavailable):
    """The runner is not there (restarting, reloading its process, or stopped): answer 503, retry soon."""

    def __init__(self, why: str):
        super().__init__(f"the model runner is unavailable ({why}); retry shortly", retry_after=1)


class Client:
    """Calls into the runner: `call("infer", ...)` returns its answer or raises what it raised."""

    def __init__(self, address: str, secret: bytes):
        self.address, self.secret = address, secret
        self._local = threading.local()

    def call(self, op: str, *args: Any, timeout: float = 5.0) -> Any:
        conn = self._connection()
        try:
            conn.send((op, args))
            if not conn.poll(max(timeout, 0.001)):
                self._drop()  # the answer, if it ever comes, would be read as the next call's
                raise RunnerGone(f"no answer within {timeout:.1f} s")
            ok, value = conn.recv()
        except (OSError, EOFError) as error:
            self._drop()
            raise RunnerGone(type(error).__name__) from None
        if ok:
            return value
        code, message, retry_after, kind = value
        if kind == "StaleVersions":
            from service.manager import StaleVersions

            raise StaleVersions(message, retry_after=retry_after)
        raise PinpointError(message, code=code, retry_after=retry_after)

    def _connection(self) -> connection.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = connection.Client(self.address, family="AF_UNIX", authkey=self.secret)
            except (OSError, EOFError, connection.AuthenticationError) as error:
                raise RunnerGone(f"cannot connect: {type(error).__name__}") from None
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass


class Server:
    """Answers calls: `handlers[op](*args)`; a PinpointError travels back as one, anything else as 500."""

    def __init__(self, address: str, secret: bytes, handlers: dict[str, Callable[..., Any]]):
        self.address, self.handlers = address, handlers
        if os.path.exists(address):
            os.unlink(address)  # a socket left by a runner that was killed
        self._listener = connection.Listener(address, family="AF_UNIX", backlog=128, authkey=secret)
        os.chmod(address, 0o600)
        self._closed = False

    def serve_forever(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, connection.AuthenticationError):
                if self._closed:
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), name="pinpoint-ipc", daemon=True).start()

    def _serve(self, conn: connection.Connection) -> None:
        with conn:
            while True:
                try:
                    op, args = conn.recv()
                except (OSError, EOFError):
                    return
                try:
                    answer = (True, self.handlers[op](*args))
                except PinpointError as error:
                    answer = (False, (error.code, error.message, error.retry_after, type(error).__name__))
                except Exception as error:  # a bug: log it here, answer a 500 there
                    log.exception("runner_call_failed", op=op)
                    answer = (False, ("internal_error", f"the model runner failed: {type(error).__name__}", None, ""))
                try:
                    conn.send(answer)
                except (OSError, EOFError):
                    return

    def close(self) -> None:
        self._closed = True
        self._listener.close()
