"""The model runner's side of the worker hop: what API workers may ask of the one process that holds
the models (the manager, its runtime and the inference thread, batching across every worker).

Workers resolve versions themselves from the runner's `state` (refreshed a few times a second) and
send crops to `infer`, which leases those exact versions here, so none unloads mid-request; a worker
whose state is stale gets model_unavailable and looks again. (Rate-limit buckets are not here: the
workers share them in a file, service/http/ratelimit.SharedBuckets, so a request costs one call, not two.)
"""

from __future__ import annotations

import time

from service.engine import Engine
from service.errors import ModelUnavailable, NotFound
from service.processes.hop import Reply, Server
from service.serving.manager import ModelRef, StaleVersions


class RunnerService:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.handlers = {"infer": self.infer, "state": self.state, "shadow": self.shadow,
                         "poll": self.poll, "web": self.engine.web.get, "ping": lambda: time.monotonic()}

    def serve(self, address: str, secret: bytes) -> Server:
        return Server(address, secret, self.handlers, replying=frozenset({"infer"}))

    def infer(self, feeds: dict, deadline: float, reply: Reply | None = None):
        """Lease exactly the versions the worker resolved (none unloads meanwhile) and run them. The
        inference thread answers the worker itself when the job is done and no other job waits for it:
        one thread hand-off less on the way back (the IPC thread answers partial results and errors)."""
        refs = [ModelRef(*_split(key)) for key in feeds]
        try:
            lease = self.engine.manager.acquire(refs)
            lease.__enter__()
        except (ModelUnavailable, NotFound) as error:
            raise StaleVersions(f"{', '.join(sorted(feeds))}: {error.message}", retry_after=1) from None
        try:
            runtime = self.engine.manager.runtime

            def answer(done):
                if reply is not None and runtime.queue_depth == 0 and not done.cancelled() \
                        and done.exception() is None:
                    reply.early(done.result())

            return runtime.infer(feeds, deadline, on_done=answer)
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

    def poll(self) -> None:
        self.engine.manager.poll()


def _split(key: str) -> tuple[str, int]:
    name, _, version = key.rpartition("@")
    return name, int(version)

