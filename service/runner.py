"""The model runner's side of the worker hop: what API workers may ask of the one process that holds
the models (the manager, its runtime and the inference thread, batching across every worker).

Workers resolve versions themselves from the runner's `state` (refreshed a few times a second) and
send crops to `infer`, which leases those exact versions here, so none unloads mid-request; a worker
whose state is stale gets model_unavailable and looks again. Rate-limit buckets live here too, so a
client's limit holds across every worker without Redis.
"""

from __future__ import annotations

import time

from service.engine import Engine
from service.ipc import Server
from service.errors import ModelUnavailable, NotFound
from service.manager import ModelRef, StaleVersions
from service.ratelimit import Decision, MemoryBuckets


class RunnerService:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.buckets = MemoryBuckets()
        self.handlers = {"infer": self.infer, "state": self.state, "shadow": self.shadow, "take": self.take,
                         "poll": self.poll, "web": self.engine.web.get, "ping": lambda: time.monotonic()}

    def serve(self, address: str, secret: bytes) -> Server:
        return Server(address, secret, self.handlers)

    def infer(self, feeds: dict, deadline: float):
        """Lease exactly the versions the worker resolved (none unloads meanwhile) and run them."""
        refs = [ModelRef(*_split(key)) for key in feeds]
        try:
            lease = self.engine.manager.acquire(refs)
            lease.__enter__()
        except (ModelUnavailable, NotFound) as error:
            raise StaleVersions(f"{', '.join(sorted(feeds))}: {error.message}", retry_after=1) from None
        try:
            return self.engine.manager.runtime.infer(feeds, deadline)
        finally:
            lease.__exit__(None, None, None)

    def state(self) -> dict:
        manager = self.engine.manager
        with manager._lock:  # copied here, so nothing changes while it is pickled after the lock is let go
            return {"versions": {name: dict(versions) for name, versions in manager.versions.items()},
                    "labels": {name: dict(labels) for name, labels in manager.labels.items()},
                    "policies": dict(manager.policies), "chosen": {n: set(v) for n, v in manager.chosen.items()},
                    "polled": manager.polled, "policy_error": manager.policy_error,
                    "load_failures": dict(manager.load_failures), "draining": manager.draining,
                    "queue_depth": manager.runtime.queue_depth}

    def shadow(self, key: str, rows, served: list[str]) -> None:
        name, version = _split(key)
        entry = self.engine.manager.versions.get(name, {}).get(version)
        if entry is not None:
            self.engine.manager.shadow(entry, rows, served)

    def take(self, key: str, rate: float, burst: int) -> Decision:
        return self.buckets.take(key, rate, burst)

    def poll(self) -> None:
        self.engine.manager.poll()


def _split(key: str) -> tuple[str, int]:
    name, _, version = key.rpartition("@")
    return name, int(version)

