"""The model runner: what holds the models, behind one interface (`Runner`) with two implementations,
chosen once when the engine is built (service/engine.py):

    LocalRunner   the manager, the runtime and its inference thread, the web copies, in this process
                  (`workers = 0`, `pinpoint predict`, scripts; and the model runner's own process)
    RemoteRunner  the same calls, made over the worker hop to the model runner's process
                  (an API worker: service/processes/runner_client.py)

The methods that cross processes are the hop's ops (service/processes/messages.py: Op); `serve` answers
them in the runner's process by calling its LocalRunner. Requests resolve versions through
`runner.manager` (the truth here; in a worker, the runner's state followed a few times a second) and
run them through `manager.runtime`, so a request costs one call to the runner: `infer`, which leases
exactly the versions the worker resolved (none unloads mid-request); a worker whose copy was stale gets
StaleVersions and looks again. (Rate-limit buckets are not here: the workers share them in a file,
service/http/ratelimit.SharedBuckets, so a request costs one call, not two.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from service.config import Settings
from service.errors import ModelUnavailable, NotFound
from service.processes.hop import Reply, Server
from service.processes.messages import Op, RunnerState
from service.serving.manager import Manager, ModelRef, StaleVersions
from service.serving.runtime import Outcome, Runtime
from service.serving.servable_id import ServableId
from service.serving.web_copies import WebModels
from service.serving.web_model import WebModel


@runtime_checkable
class Runner(Protocol):
    """What holds the models, as the engine and the requests see it."""

    remote: bool  # the models are in another process (the model runner's): it polls the repository
    manager: Manager  # versions to resolve and lease; its `runtime.infer` runs them

    def configure(self, settings: Settings) -> None:
        """Take these settings (at start and on SIGHUP)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def state(self) -> RunnerState:
        """The manager's state, copied, and the inference queue's depth."""

    def infer(self, feeds: dict[str, np.ndarray], deadline: float) -> Outcome:
        """Run each `name@version` key's rows on that exact version (StaleVersions if it no longer serves)."""

    def shadow(self, key: str, rows: np.ndarray, served: list[str]) -> None:
        """Queue `rows` for the shadow version `key`, comparing its top-1 with the `served` labels."""

    def poll(self) -> None:
        """Read the model repository again."""

    def web(self, name: str, version: int) -> WebModel:
        """The version's web copy (exported on first ask)."""


class LocalRunner:
    """The models in this process."""

    remote = False

    def __init__(self, settings: Settings):
        self.runtime = Runtime(max_batch=settings.max_batch, queue_size=settings.queue_size,
                               intra_op_threads=settings.intra_op_threads, inter_op_threads=settings.inter_op_threads,
                               threads=settings.inference_threads)
        self.manager = Manager(settings.models, settings.labels, self.runtime)
        self.web_models = WebModels(self.manager, lambda: self.runtime.load_options)

    def configure(self, settings: Settings) -> None:
        """The runtime's queue size and thread pools are fixed at start; the batch size applies to the
        next batch, and which backend runs a graph to the versions loaded from now on."""
        self.runtime.max_batch = settings.max_batch
        self.runtime.load_options = dataclasses.replace(
            self.runtime.load_options, backend=settings.backend, onnx_tolerance=settings.onnx_tolerance,
            onnx_cache=settings.onnx_cache)
        self.manager.configure(settings.models, settings.labels)

    def start(self) -> None:
        self.runtime.start()
        self.manager.poll()

    def stop(self) -> None:
        self.runtime.stop()

    def state(self) -> RunnerState:
        return RunnerState(self.manager.state(), self.runtime.queue_depth)

    def infer(self, feeds: dict[str, np.ndarray], deadline: float) -> Outcome:
        """Lease exactly the versions the keys name, so none unloads meanwhile, and run them. One that
        cannot be had any more is StaleVersions: the caller resolved it from a copy that is now stale."""
        lease = self._leased(feeds)
        try:
            return self.runtime.infer(feeds, deadline)
        finally:
            lease.__exit__(None, None, None)

    def infer_then(self, feeds: dict[str, np.ndarray], deadline: float,
                   answer: Callable[[Outcome | Exception], None]) -> None:
        """infer() answered through `answer`, once, when done or at the deadline (Runtime.infer_then);
        the lease is held until then. What is refused at once (stale versions, a full queue) is raised."""
        lease = self._leased(feeds)

        def answer_and_release(outcome: Outcome | Exception) -> None:
            try:
                lease.__exit__(None, None, None)
            finally:
                answer(outcome)

        try:
            self.runtime.infer_then(feeds, deadline, answer_and_release)
        except BaseException:
            lease.__exit__(None, None, None)
            raise

    def _leased(self, feeds: dict[str, np.ndarray]):
        """The keys' exact versions, leased (entered: the caller exits it when the answer is out)."""
        refs = [ModelRef(servable.name, servable.version) for servable in map(ServableId.parse, feeds)]
        try:
            lease = self.manager.acquire(refs)
            lease.__enter__()
            return lease
        except (ModelUnavailable, NotFound) as error:
            raise StaleVersions(f"{', '.join(sorted(feeds))}: {error.message}", retry_after=1) from None

    def shadow(self, key: str, rows: np.ndarray, served: list[str]) -> None:
        servable = ServableId.parse(key)
        entry = self.manager.find(servable.name, servable.version)
        if entry is not None:
            self.manager.shadow(entry, rows, served)

    def poll(self) -> None:
        self.manager.poll()

    def web(self, name: str, version: int) -> WebModel:
        return self.web_models.get(name, version)


def serve(runner: LocalRunner, address: str, secret: bytes) -> Server:
    """The runner's side of the hop: each Op answered by the LocalRunner method of its name."""
    handlers = {op.value: getattr(runner, op.value) for op in Op}

    def infer(feeds, deadline, reply: Reply) -> None:
        # Answered from the inference thread as soon as the job is done (or from the deadlines' thread
        # at the deadline): the connection's thread goes back to reading, and nothing wakes it per call.
        runner.infer_then(feeds, deadline, reply.answer)

    handlers[Op.INFER.value] = infer
    return Server(address, secret, handlers, replying=frozenset({Op.INFER.value}))
