"""The hop between API workers and the model runner: calls over a Unix socket.

multiprocessing.connection opens the connection and does the handshake (an HMAC challenge on a
shared secret, so no other local process can talk to the runner); the calls then travel in frames of
our own (send/receive below): a pickle (protocol 5) whose numpy arrays go out of band, their buffers
written straight from the arrays in the same writev as the frame's header, and read into one buffer
the arrays are rebuilt over. multiprocessing's own framing copies a request's crops (~120 KB for the
demo models) four times and writes them in two system calls (the runner may wake up for the 4-byte
length and wait again for the rest): an `infer` round trip took 430–540 µs with it and 260–360 µs with
these frames, calls 4 ms apart on a loaded 2-core machine (docs/benchmarks.md). Each worker thread
keeps its own connection, so calls never wait on one another; the runner serves each connection on a
thread of its own, which does not wait for an `infer`: the inference thread sends the answer itself
when the job is done, or the deadlines' thread at the deadline (Reply). What the frames carry
is declared in service/processes/messages.py; errors cross as Failures (service/processes/failures.py).
"""

from __future__ import annotations

import os
import pickle
import struct
import threading
from collections.abc import Callable
from multiprocessing import connection
from typing import Any

import structlog

from service.errors import ModelUnavailable, PinpointError
from service.processes import failures
from service.processes.messages import Answer

log = structlog.get_logger("pinpoint.ipc")
_HEAD = struct.Struct("!QII")  # bytes after the header, the pickle's length, how many out-of-band buffers
_ALIGN = 64  # each buffer starts at a multiple of this in the frame, so the arrays rebuilt on it keep aligned items
_MAX_PARTS = 512  # below IOV_MAX (1024) for one writev


def send(fd: int, obj: Any) -> None:
    """One frame: header, buffer sizes, pickle, then each array's buffer (padded to _ALIGN), one writev."""
    write(fd, frame(obj))


def frame(obj: Any) -> list[memoryview]:
    """The parts of `obj`'s frame, for write(): the arrays' buffers are not copied."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    sizes = struct.pack(f"!{len(raws)}Q", *(raw.nbytes for raw in raws))
    parts: list[memoryview] = [memoryview(sizes), memoryview(data)]
    length = len(sizes) + len(data)
    for raw in raws:
        pad = -length % _ALIGN
        if pad:
            parts.append(memoryview(bytes(pad)))
        parts.append(raw)
        length += pad + raw.nbytes
    parts.insert(0, memoryview(_HEAD.pack(length, len(data), len(raws))))
    if len(parts) > _MAX_PARTS:
        parts = [memoryview(b"".join(parts))]
    return parts


def write(fd: int, parts: list[memoryview]) -> None:
    parts = list(parts)
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= parts[0].nbytes:
            written -= parts.pop(0).nbytes
        if written:
            parts[0] = parts[0][written:]


def receive(fd: int) -> Any:
    """The next frame's object; its arrays are views of the one buffer the frame was read into."""
    head = bytearray(_HEAD.size)
    _read_into(fd, memoryview(head))
    length, pickled, count = _HEAD.unpack(head)
    body = memoryview(bytearray(length))
    _read_into(fd, body)
    sizes = struct.unpack_from(f"!{count}Q", body)
    at = 8 * count
    data, at = body[at:at + pickled], at + pickled
    buffers = []
    for size in sizes:
        at += -at % _ALIGN
        buffers.append(body[at:at + size])
        at += size
    return pickle.loads(data, buffers=buffers)


def _read_into(fd: int, view: memoryview) -> None:
    first = True
    while view.nbytes:
        got = os.readv(fd, [view])
        if got == 0:
            if first:
                raise EOFError
            raise OSError("the connection closed in the middle of a frame")
        view, first = view[got:], False


class RunnerGone(ModelUnavailable):
    """The runner is not there (restarting, reloading its process, or stopped): answer 503, retry soon."""

    def __init__(self, why: str):
        super().__init__(f"the model runner is unavailable ({why}); retry shortly", retry_after=1)


class _Broken(RunnerGone):
    """A call could not be sent: the runner at the connection's other end is gone."""


class Client:
    """Calls into the runner: `call(Op.INFER, ...)` returns its answer or raises what it raised."""

    def __init__(self, address: str, secret: bytes):
        self.address, self.secret = address, secret
        self._local = threading.local()

    def call(self, op: str, *args: Any, timeout: float = 5.0) -> Any:
        reused = getattr(self._local, "conn", None) is not None
        try:
            ok, value = self._exchange(op, args, timeout)
        except _Broken:
            if not reused:
                raise
            # Every thread keeps its own connection, so after the runner was restarted each thread
            # still holds one to the runner that died: the call could not even be sent, so it is made
            # once to the new runner on a new connection instead of failing the request (a second
            # failure is a RunnerGone too). A runner that dies after a call was sent is not asked
            # again: the call may be what killed it.
            ok, value = self._exchange(op, args, timeout)
        if ok:
            return value
        raise failures.rebuild(value)

    def _exchange(self, op: str, args: tuple, timeout: float) -> Answer:
        conn = self._connection()
        try:
            send(conn.fileno(), (str(op), args))  # an Op as its plain string (messages.py: the hot path)
        except OSError as error:
            self._drop()
            raise _Broken(type(error).__name__) from None
        try:
            if not conn.poll(max(timeout, 0.001)):
                self._drop()  # the answer, if it ever comes, would be read as the next call's
                raise RunnerGone(f"no answer within {timeout:.1f} s")
            return receive(conn.fileno())
        except (OSError, EOFError) as error:
            self._drop()
            raise RunnerGone(type(error).__name__) from None

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


class Reply:
    """The answer to one call, sent once by whichever thread has it. A `replying` handler answers
    through it, now or later from another thread (the model runner's inference thread); the connection's
    thread meanwhile goes back to reading, which is all the caller's next call needs: a connection carries
    one call at a time. Once the connection's thread has ended (the caller went away), a late answer is
    dropped, never written to a descriptor that may by then be another connection's."""

    def __init__(self, channel: _Channel, op: str):
        self._channel, self._op = channel, op
        self._claimed = threading.Lock()

    def answer(self, outcome: Any) -> None:
        """Send `outcome`: a value, or an exception (a PinpointError travels back as itself)."""
        if not self._claimed.acquire(blocking=False):
            return
        if isinstance(outcome, PinpointError):
            self._channel.send((False, failures.failure(outcome)))
        elif isinstance(outcome, BaseException):  # a bug: logged here, answered as a 500 there
            log.error("runner_call_failed", op=self._op, error=repr(outcome), exc_info=outcome)
            self._channel.send((False, failures.internal(outcome)))
        else:
            self._channel.send((True, outcome))


class _Channel:
    """One caller's connection, as the threads answering on it see it."""

    SMALL = 16384  # an answer this big at most always fits the socket's empty buffer: written at once

    def __init__(self, fd: int):
        self.fd = fd
        self._lock = threading.Lock()
        self._open = True

    def send(self, answer: Answer) -> None:
        try:
            parts = frame(answer)
        except Exception as error:  # an answer that cannot be pickled: a bug, answered as a 500
            log.exception("runner_answer_failed")
            parts = frame((False, failures.internal(error)))
        if sum(part.nbytes for part in parts) <= self.SMALL:
            self._write(parts)
        else:
            # A large answer (a tensor API's outputs) waits on the caller's reading: never on the
            # inference thread, which every worker's requests wait for.
            try:
                threading.Thread(target=self._write, args=(parts,), name="pinpoint-ipc-answer", daemon=True).start()
            except RuntimeError:  # no thread to be had: written here rather than lost
                self._write(parts)

    def _write(self, parts: list[memoryview]) -> None:
        with self._lock:
            if not self._open:
                return
            try:
                write(self.fd, parts)
            except OSError:
                pass  # the caller gave up and closed the connection; its thread here ends on the EOF

    def close(self) -> None:
        with self._lock:
            self._open = False


class Server:
    """Answers calls: `handlers[op](*args)`; a PinpointError travels back as the same class, anything
    else as a 500. The handlers of `replying` ops get `reply=` (a Reply) instead and answer through it,
    then or later; what they raise is answered for them."""

    def __init__(self, address: str, secret: bytes, handlers: dict[str, Callable[..., Any]],
                 replying: frozenset[str] = frozenset()):
        self.address, self.handlers, self.replying = address, handlers, replying
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
        channel = _Channel(conn.fileno())
        with conn:
            try:
                while True:
                    try:
                        op, args = receive(channel.fd)
                    except (OSError, EOFError):
                        return
                    reply = Reply(channel, op)
                    try:
                        if op in self.replying:
                            self.handlers[op](*args, reply=reply)
                        else:
                            reply.answer(self.handlers[op](*args))
                    except Exception as error:
                        reply.answer(error)
            finally:
                channel.close()  # before the descriptor is: a late answer is dropped, not misdelivered

    def close(self) -> None:
        self._closed = True
        self._listener.close()
