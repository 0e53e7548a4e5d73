"""Which API worker takes the next connection: one that holds no more than any other.

The API workers accept from one listening socket, the supervisor's. Left alone, the kernel gives a new
connection to whichever worker calls accept first, and the busiest event loop wakes most often: with 32
kept-alive connections one worker held 31. One socket per worker (SO_REUSEPORT, nginx's `reuseport`)
spreads them by a hash of the client's address, which is fair on average but not in any one pool: wrk's
8 connections split 7/1 in one run of five, and connections hashed to a worker being restarted waited
for it.

So each worker writes, in a table every worker maps (a file in the server's run directory), how many
connections it holds and when it last looked; it listens for new ones only while it holds no more than
the fewest any other live worker holds. The one holding the fewest always qualifies. A worker whose
entry is older than STALE_S (killed, stopped, stuck) no longer counts, and one that drains leaves the
table, so a worker that cannot take connections holds the others back STALE_S at most.

A worker held back is not listening, and its event loop may sleep: a worker that stops listening
(it just took a connection and now holds more than another) pokes the others, a datagram to each one's
wake-up socket in the run directory, so the one that now qualifies listens at once; a burst of new
connections alternates between the workers without waiting. A held-back worker also looks again
after HELD_BACK_S, then twice as long each time up to the event loop's tick (for a worker that went
stale), without waking 100 times a second while the split stays uneven.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import time
from pathlib import Path

from service.processes.roles import RUNNER_ENV, WORKER_ENV, WORKERS_ENV

ENTRY = struct.Struct("<qd")  # connections held, when written (CLOCK_MONOTONIC: one clock for the machine)
MAX_WORKERS = 256  # the most the `workers` setting allows
STALE_S = 1.0  # a live worker's event loop writes at least every 0.25 s (service/http/server.py's tick)
HELD_BACK_S = 0.01


class ConnectionShare:
    """This worker's entry in the table, and whether it may accept now."""

    def __init__(self, path: Path, index: int, workers: int, clock=time.monotonic):
        if not 0 <= index < min(workers, MAX_WORKERS):
            raise ValueError(f"worker {index} of {workers}")
        self.index, self.workers, self._clock = index, workers, clock
        size = MAX_WORKERS * ENTRY.size
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zeros: every entry written at 0, long stale (several workers may do this)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._wake_paths = [str(path.with_name(f"wake-{other}")) for other in range(workers) if other != index]
        self.wake_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        mine = path.with_name(f"wake-{index}")
        mine.unlink(missing_ok=True)  # a predecessor's, if this worker replaces one
        self.wake_socket.bind(str(mine))
        self.wake_socket.setblocking(False)

    @classmethod
    def of_this_worker(cls) -> ConnectionShare | None:
        """The share of an API worker of `pinpoint serve`, as its supervisor numbered it (not as the
        settings say now: they may have been edited since); None in a server of one process."""
        if WORKER_ENV not in os.environ or RUNNER_ENV not in os.environ:
            return None
        return cls(Path(os.environ[RUNNER_ENV]).with_name("connections"), int(os.environ[WORKER_ENV]),
                   int(os.environ[WORKERS_ENV]))

    def may_accept(self, held: int) -> bool:
        """Write that this worker holds `held` connections; True unless another live worker holds fewer."""
        now = self._clock()
        ENTRY.pack_into(self._map, self.index * ENTRY.size, held, now)
        for other in range(self.workers):
            if other != self.index and (count := self._live_count(other, now)) is not None and count < held:
                return False
        return True

    def _live_count(self, index: int, now: float) -> int | None:
        """What worker `index` last wrote it holds; None once that is older than STALE_S (or it left)."""
        count, written = ENTRY.unpack_from(self._map, index * ENTRY.size)
        return count if now - written < STALE_S else None

    def leave(self) -> None:
        """Stop counting this worker (it drains): the others no longer wait for it to catch up."""
        ENTRY.pack_into(self._map, self.index * ENTRY.size, 0, 0.0)
        self.wake_others()

    def wake_others(self) -> None:
        """This worker stopped listening: the others look at the table again now (one of them qualifies)."""
        for path in self._wake_paths:
            try:
                self.wake_socket.sendto(b"!", path)
            except OSError:
                pass  # not there (yet, or any more), or its queue is full: it is awake anyway

    def held(self) -> list[int | None]:
        """Connections each worker holds, None for one not counted (for logs and tests)."""
        now = self._clock()
        return [self._live_count(index, now) for index in range(self.workers)]
