"""Token buckets, one per client: `rate` tokens a second, at most `burst` saved up.

The Buckets interface is what the HTTP layer calls; MemoryBuckets keeps them in this process. A
shared backend (Redis, for replicas behind one load balancer) implements the same `take`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
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


def _decision(allowed: bool, tokens: float, rate: float, burst: int) -> Decision:
    missing = burst - tokens
    return Decision(
        allowed=allowed,
        limit=burst,
        remaining=int(math.floor(tokens)),
        reset_s=missing / rate if rate > 0 else 0.0,
        retry_after_s=0.0 if allowed else (1.0 - tokens) / rate if rate > 0 else 1.0,
    )
