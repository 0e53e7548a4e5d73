"""An API worker's runner: the Runner interface (service/processes/runner.py) answered by the model
runner's process over the worker hop (service/processes/hop.py).

The worker's manager follows the runner's: it takes the runner's state (`Op.STATE`) a few times a
second and resolves `color`, `color@2` and `color@canary` from it, so a request costs one call to the
runner: `infer`. If the copy was stale (a version moved meanwhile), the runner says so (StaleVersions)
and the worker looks again once. Loading, unloading, polling and shadow runs happen in the runner.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import structlog

from service.config import Settings
from service.errors import ModelUnavailable, PinpointError
from service.processes.hop import Client
from service.processes.messages import Op, RunnerState
from service.serving.manager import Manager, Version
from service.serving.runtime import Outcome
from service.serving.web_model import WebModel

log = structlog.get_logger("pinpoint.remote")
REFRESH_S = 0.25


class RemoteRunner:
    """The model runner's process, called over the hop. It is also what runs its manager's leases
    (`manager.runtime`): its `infer` is the runner's, and `queue_depth` the runner's, as last seen."""

    remote = True

    def __init__(self, client: Client, settings: Settings):
        self.client = client
        self.queue_depth = 0
        self.on_batch = None  # batches form in the runner; it observes them
        self.manager = RemoteManager(self, settings)

    @property
    def address(self) -> str:
        """The runner's socket; its run directory holds what the workers share (rate-limit buckets)."""
        return self.client.address

    def configure(self, settings: Settings) -> None:
        self.manager.configure(settings.models, settings.labels)

    def start(self) -> None:
        self.manager.start()

    def stop(self) -> None:
        self.manager.stop()

    def state(self, timeout: float = 2.0) -> RunnerState:
        state = self.client.call(Op.STATE, timeout=timeout)
        self.queue_depth = state.queue_depth
        return state

    def infer(self, feeds: dict[str, np.ndarray], deadline: float) -> Outcome:
        # Past the deadline the runner answers a partial result or a timeout; a little slack for the hop.
        return self.client.call(Op.INFER, feeds, deadline, timeout=max(0.0, deadline - time.monotonic()) + 1.0)

    def shadow(self, key: str, rows: np.ndarray, served: list[str]) -> None:
        self.client.call(Op.SHADOW, key, rows, served, timeout=1.0)

    def poll(self) -> None:
        self.client.call(Op.POLL, timeout=30.0)

    def web(self, name: str, version: int) -> WebModel:
        return self.client.call(Op.WEB, name, version, timeout=300.0)  # a first conversion takes seconds


class RemoteManager(Manager):
    """A Manager whose state is the runner's, followed (Manager.follow); what changes it happens there."""

    def __init__(self, runner: RemoteRunner, settings: Settings):
        super().__init__(settings.models, settings.labels, runner)
        self.runner = runner
        self.reachable = False
        self._stopping = threading.Event()

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self._refresh_forever, name="pinpoint-runner-state", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def _refresh_forever(self) -> None:
        while not self._stopping.wait(REFRESH_S):
            self.refresh()

    def refresh(self, timeout: float = 2.0) -> None:
        try:
            state = self.runner.state(timeout=timeout)
        except PinpointError as error:  # RunnerGone, or a bug in the runner (it logged it)
            if self.reachable:
                log.warning("model_runner_unreachable", error=error.message)
            self.reachable = False
            return
        self.follow(state.manager)
        if not self.reachable:
            log.info("model_runner_reachable")
        self.reachable = True

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
        self.runner.poll()
        self.refresh()

    def shadow(self, shadow: Version, rows, serving_top1: list[str]) -> None:
        try:
            self.runner.shadow(shadow.key, rows, serving_top1)
        except PinpointError:
            pass  # a shadow run is never worth failing or slowing an answer
