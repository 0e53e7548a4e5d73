"""An API worker's view of the model runner: the same interfaces the pipeline uses in one process
(a Manager, a Runtime), answered over the worker hop (service/processes/hop.py), and the rate-limit Buckets
every worker shares without asking the runner.

The worker keeps a copy of the runner's manager state, refreshed in the background, and resolves
`color`, `color@2` and `color@canary` from it, so a request costs one call to the runner: `infer`.
If the copy was stale (a version moved meanwhile), the runner says so and the worker looks again once.
"""

from __future__ import annotations

import threading
import time

import structlog

from service.errors import ModelUnavailable
from service.processes.hop import Client, RunnerGone
from service.serving.manager import Manager, Version
from service.serving.runtime import Outcome

log = structlog.get_logger("pinpoint.remote")
REFRESH_S = 0.25


class RemoteRuntime:
    def __init__(self, client: Client):
        self.client = client
        self.queue_depth = 0
        self.max_batch = 0
        self.on_batch = None  # batches form in the runner; it observes them

    def infer(self, feeds, deadline: float) -> Outcome:
        # Past the deadline the runner answers a partial result or a timeout; a little slack for the hop.
        return self.client.call("infer", feeds, deadline, timeout=max(0.0, deadline - time.monotonic()) + 1.0)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class RemoteManager(Manager):
    """A Manager whose state is the runner's, copied; loading and unloading happen there."""

    def __init__(self, client: Client, runtime: RemoteRuntime):
        super().__init__(None, None, runtime)
        self.client = client
        self.reachable = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._refresh_forever, name="pinpoint-runner-state", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _refresh_forever(self) -> None:
        while not self._stopping.wait(REFRESH_S):
            self.refresh()

    def refresh(self, timeout: float = 2.0) -> None:
        try:
            state = self.client.call("state", timeout=timeout)
        except RunnerGone as error:
            if self.reachable:
                log.warning("model_runner_unreachable", error=error.message)
            self.reachable = False
            return
        with self._lock:
            self.versions, self.labels, self.policies = state["versions"], state["labels"], state["policies"]
            self.chosen, self.load_failures = state["chosen"], state["load_failures"]
            self.policy_error = state["policy_error"]
            self.polled = state["polled"] and not state["draining"]
            self.runtime.queue_depth = state["queue_depth"]
            if not self.reachable:
                log.info("model_runner_reachable")
            self.reachable = True
            self._lock.notify_all()

    def _refreshed_if_not_ready(self) -> bool:
        """A copy taken while the runner was away or its models loading is refreshed now, not up to
        REFRESH_S later: a ready runner is not turned away, nor its models listed as none. True if ready."""
        if not (self.reachable and super().ready):
            self.refresh(timeout=0.25)
        return self.reachable and super().ready

    @property
    def ready(self) -> bool:
        return self._refreshed_if_not_ready()

    def snapshot(self):
        self._refreshed_if_not_ready()
        return super().snapshot()

    def acquire(self, refs, partial: bool = False):
        self._refreshed_if_not_ready()
        if not self.reachable:
            raise ModelUnavailable("the model runner is starting or restarting", retry_after=1)
        return super().acquire(refs, partial)

    def poll(self) -> None:
        self.client.call("poll", timeout=30.0)
        self.refresh()

    def shadow(self, shadow: Version, rows, serving_top1: list[str]) -> None:
        try:
            self.client.call("shadow", shadow.key, rows, serving_top1, timeout=1.0)
        except ModelUnavailable:
            pass  # a shadow run is never worth failing or slowing an answer
