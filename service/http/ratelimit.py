"""Token buckets, one per client: `rate` tokens a second, at most `burst` saved up.

The Buckets interface is what the HTTP layer calls; MemoryBuckets keeps them in this process,
SharedBuckets in a file every API worker of one server maps (service/http/app.py buckets_for), and a shared
backend (Redis, for replicas behind one load balancer) implements the same `take`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import math
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # the burst: requests a client may make at once
    remaining: int  # whole tokens left after this request
    reset_s: float  # seconds until the bucket is full again
    retry_after_s: float  # seconds until one token is back (0 when allowed)


class Buckets(Protocol):
    def take(self, key: str, rate: float, burst: int) -> Decision: ...


class MemoryBuckets:
    """In-process buckets, bounded: the least recently seen clients are forgotten first (a full bucket)."""

    def __init__(self, max_clients: int = 100_000, clock=time.monotonic):
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, updated)
        self._lock = threading.Lock()
        self._max_clients = max_clients
        self._clock = clock

    def take(self, key: str, rate: float, burst: int) -> Decision:
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - updated) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        return _decision(allowed, tokens, rate, burst)


class SharedBuckets:
    """Buckets in a memory-mapped file shared by the API workers of one server, so a client's limit
    holds however many workers its connections reach, without a round trip to another process (asking
    the model runner cost a request 0.25–0.45 ms on a loaded 2-core machine; this takes ~0.05 ms).
    The file is a table of `slots` entries (a hash of the client's key, its tokens, when they were
    counted) with open addressing over `PROBE` neighbours; a take holds an flock on the file for the
    few microseconds it reads and writes one entry (the kernel lets go of it if a worker dies holding
    it). When every neighbour is taken, the least recently seen client among them is forgotten (a full
    bucket), as MemoryBuckets forgets its least recent ones. CLOCK_MONOTONIC is one clock for every
    process of the machine."""

    SLOT = struct.Struct("<Qdd")  # key hash (0: empty), tokens, updated
    PROBE = 16

    def __init__(self, path: Path, slots: int = 1 << 17, clock=time.monotonic):
        self._slots, self._clock = slots, clock
        size = slots * self.SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)  # zeros: every entry empty (several workers may do this at once)
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()  # an flock is the process's: its threads take turns here first

    def take(self, key: str, rate: float, burst: int) -> Decision:
        digest = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
                                "little") or 1
        home = digest % self._slots
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                now = self._clock()
                at, tokens, updated, oldest = None, float(burst), now, math.inf
                for step in range(self.PROBE):
                    offset = (home + step) % self._slots * self.SLOT.size
                    owner, saved, when = self.SLOT.unpack_from(self._map, offset)
                    if owner == digest:
                        at, tokens, updated = offset, saved, when
                        break
                    if owner == 0:
                        at = offset
                        break
                    if when < oldest:
                        at, oldest = offset, when
                tokens = min(float(burst), tokens + max(0.0, now - updated) * rate)
                allowed = tokens >= 1.0
                if allowed:
                    tokens -= 1.0
                self.SLOT.pack_into(self._map, at, digest, tokens, now)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return _decision(allowed, tokens, rate, burst)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def _decision(allowed: bool, tokens: float, rate: float, burst: int) -> Decision:
    missing = burst - tokens
    return Decision(
        allowed=allowed,
        limit=burst,
        remaining=int(math.floor(tokens)),
        reset_s=missing / rate if rate > 0 else 0.0,
        retry_after_s=0.0 if allowed else (1.0 - tokens) / rate if rate > 0 else 1.0,
    )


# Atomic in Redis: read, refill, take, write. Time comes from the Redis server, so replicas whose
# clocks disagree still share one consistent bucket.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local full_in = (burst - tokens) / math.max(rate, 0.000001)
redis.call('PEXPIRE', KEYS[1], math.ceil(full_in * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisBuckets:
    """Buckets shared by every replica through one Redis. When Redis cannot be reached the request is
    let through (fail open) or refused (fail closed), as configured; either way it is logged and counted."""

    def __init__(self, url: str, fail_open: bool = True, on_error=None, prefix: str = "pinpoint:bucket:"):
        import redis  # only needed when this backend is chosen

        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self._take = self._client.register_script(_TAKE)
        self.fail_open = fail_open
        self.on_error = on_error
        self.prefix = prefix

    def take(self, key: str, rate: float, burst: int) -> Decision:
        try:
            allowed, tokens = self._take(keys=[self.prefix + key], args=[rate, burst])
        except self._errors as error:
            if self.on_error is not None:
                self.on_error(error)
            # Failing open: as if the bucket were full. Failing closed: as if it were empty.
            return _decision(self.fail_open, float(burst - 1) if self.fail_open else 0.0, rate, burst)
        return _decision(bool(allowed), float(tokens), rate, burst)
