"""The inference thread: the one place where models run.

Servables (one version of one model each) are imported on a loader thread and handed to this thread,
which warms them up and from then on runs every batch. Request threads hand work over with submit(),
which returns a Job whose future resolves to an Outcome; the thread batches opportunistically
(service/serving/batching.py); a SavedModel's named tensors (TensorCall) share a run when
service/serving/tensor_call.py says they can. Work for a shadow version (submit_idle) runs only when no
request is waiting.

With `threads` > 1 (the `inference_threads` setting) that many threads take batches from the one queue
and run them side by side, each batch whole on one thread: with a model that costs milliseconds a crop
on several cores, one thread's runs one after another leave cores idle (docs/benchmarks.md). Control
work (a warm-up, a drop) runs alone, while no batch runs, so no run meets a servable being closed.

The runtime knows servables by key ("color@2"); which versions exist and serve is the manager's
business (service/serving/manager.py).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from service.errors import ModelUnavailable, Overloaded, Timeout, first_line
from service.serving import batching, tensor_call
from service.serving.deadlines import Deadlines
from service.serving.loader import LoadOptions, load_servable, warm_up_rows
from service.serving.repository import ModelSpec
from service.serving.tensor_call import TensorCall

log = structlog.get_logger("pinpoint.runtime")

_STOP = object()
_WAKE = object()  # control work or idle work is waiting: look before blocking again
IDLE_QUEUE = 64  # shadow jobs waiting at most; beyond it they are skipped (and counted by the caller)


@dataclasses.dataclass
class Outcome:
    # servable key -> [N, classes] raw output rows, one per crop; for a TensorCall, alias -> tensor
    outputs: dict[str, np.ndarray | dict[str, np.ndarray]]
    errors: dict[str, str]  # servable key -> why it produced nothing
    queue_ms: float
    run_ms: float


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What Runtime.load's future resolves to: the servable is warm and serving."""

    cost_ms: float  # its steady-state run time, measured at warm-up
    backend: str  # "tensorflow" or "onnxruntime"
    reason: str  # why that backend (service/serving/loader.py)


@dataclasses.dataclass
class Job:
    """Work for the inference thread; results and errors fill in servable by servable as runs finish."""

    feeds: dict[str, np.ndarray | TensorCall]  # servable key -> prepared inputs (N rows), or named tensors
    deadline: float  # time.monotonic() after which nobody waits for the answer
    future: Future = dataclasses.field(default_factory=Future)
    queued_at: float = dataclasses.field(default_factory=time.monotonic)
    results: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def crops(self) -> int:
        return max((len(rows) for rows in self.feeds.values()), default=0)


class Runtime:
    def __init__(self, *, max_batch: int, queue_size: int, intra_op_threads: int, inter_op_threads: int,
                 backend: str = "auto", onnx_tolerance: float = 1e-4, onnx_cache: Path | None = None,
                 threads: int = 1):
        self.max_batch = max_batch
        self.threads = max(1, threads)
        # Read at each load (the engine replaces it on reload); the thread pools' sizes stay as started.
        self.load_options = LoadOptions(intra_op_threads, inter_op_threads, backend, onnx_tolerance, onnx_cache)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._idle: collections.deque[Job] = collections.deque(maxlen=IDLE_QUEUE)
        self._control: collections.deque[Callable[[], None]] = collections.deque()
        self._servables: dict[str, Any] = {}  # key -> loader.Servable, changed only while no batch runs
        self._cost_ms: dict[str, float] = {}
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []  # the inference threads while running; none when stopped
        self._deadlines = Deadlines()  # infer_then's answers at the deadline
        # Batches running now, and whether control work (a warm-up, a drop) waits for them to end: it runs
        # alone, so no thread runs a servable while it is closed or the table of servables changes.
        self._gate = threading.Condition()
        self._batches_running = 0
        self._threads_alive = 0  # the last inference thread to end cancels what waits and closes servables
        self._control_waiting = 0  # threads waiting to run control work, or running it
        self.on_batch = None  # optional callable(crops, run_ms), e.g. for metrics
        self.thread_ident: int | None = None  # the first inference thread's
        self.thread_idents: set[int] = set()

    # ---- lifecycle ----
    def start(self) -> None:
        self._threads = [threading.Thread(target=self._main, name="pinpoint-runtime" + (f"-{n + 1}" if n else ""),
                                          daemon=True) for n in range(self.threads)]
        self._threads_alive = len(self._threads)
        for thread in self._threads:
            thread.start()
        self._running.wait(60)

    def stop(self, timeout: float = 30.0) -> None:
        if not self._threads:
            return
        for _ in self._threads:
            self._queue.put(_STOP)  # blocks only while the queue is full; the threads are draining it
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []  # one still in a run ends after it, and cleans up then

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # ---- servables (called by the manager, from any thread) ----
    def load(self, spec: ModelSpec) -> Future:
        """Import the servable on a loader thread (choosing its backend, service/serving/loader.py), then warm it
        on the inference thread. The future resolves once it can serve (to a Loaded) or fails with the reason."""
        done: Future = Future()

        def import_it():
            try:
                servable = load_servable(spec, self.load_options)
            except Exception as error:
                done.set_exception(error)
                return
            self._call_on_thread(lambda: self._warm_up(servable, done))

        threading.Thread(target=import_it, name=f"pinpoint-load-{spec.key}", daemon=True).start()
        return done

    def unload(self, key: str) -> Future:
        done: Future = Future()

        def drop():
            servable = self._servables.pop(key, None)
            self._cost_ms.pop(key, None)
            if servable is not None:
                servable.close()
            done.set_result(None)

        self._call_on_thread(drop)
        return done

    # ---- request threads ----
    def submit(self, feeds: dict[str, np.ndarray], deadline: float) -> Job:
        """Queue the work; job.future resolves to an Outcome once every servable has answered."""
        if not self._threads:
            raise ModelUnavailable("the runtime is not running", retry_after=1)
        job = Job(feeds, deadline)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Overloaded("the inference queue is full", retry_after=1) from None
        return job

    def infer(self, feeds: dict[str, np.ndarray], deadline: float) -> Outcome:
        """Submit and wait until the deadline; a servable still running then is reported, not awaited
        (a partial answer). Every servable missing: Timeout."""
        job = self.submit(feeds, deadline)
        try:
            return job.future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            return self._at_deadline(job)
        except concurrent.futures.CancelledError:
            raise _stopped() from None

    def infer_then(self, feeds: dict[str, np.ndarray], deadline: float,
                   answer: Callable[[Outcome | Exception], None]) -> None:
        """infer() without a thread waiting: `answer` is called once, with the Outcome or the error infer
        would raise, on the inference thread as soon as the job is done, or on the deadlines' thread at
        the deadline (the partial answer). The model runner answers its callers this way: a connection's
        thread goes back to reading as soon as the job is queued, and nothing wakes it per call. What
        submit() raises (a full queue) is raised here, before anything is queued."""
        job = self.submit(feeds, deadline)
        claimed = threading.Lock()  # whichever comes first answers: the job's end or its deadline

        def at_deadline() -> None:
            if claimed.acquire(blocking=False):
                answer(_outcome_or_error(lambda: self._at_deadline(job)))

        guard = self._deadlines.at(deadline, at_deadline)

        def done(future: Future) -> None:
            guard.cancel()
            if claimed.acquire(blocking=False):
                answer(_outcome_or_error(lambda: _finished(future)))

        job.future.add_done_callback(done)

    def _at_deadline(self, job: Job) -> Outcome:
        """The deadline has come and the job is not done: drop it if it has not started, and answer
        what has arrived (Timeout if nothing has)."""
        job.future.cancel()  # dropped from the queue if it has not started
        outputs, errors = dict(job.results), dict(job.errors)
        if not outputs:
            raise Timeout("the request missed its deadline")
        for key in job.feeds:
            if key not in outputs and key not in errors:
                errors[key] = "the model missed the request's deadline"
        return Outcome(outputs, errors, (time.monotonic() - job.queued_at) * 1000, 0.0)

    def submit_idle(self, feeds: dict[str, np.ndarray]) -> Job | None:
        """Work nobody waits for (a shadow version): run when no request is waiting, or never."""
        if not self._threads or len(self._idle) == self._idle.maxlen:
            return None
        job = Job(feeds, deadline=float("inf"))
        self._idle.append(job)
        self._wake()
        return job

    # ---- the inference thread ----
    def _main(self) -> None:
        if threading.current_thread() is self._threads[0]:
            self.thread_ident = threading.get_ident()
        self.thread_idents.add(threading.get_ident())
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._running.set()
        carry = None  # what the last batch could not take: this thread's first item next time
        try:
            while True:
                self._run_control()
                first, carry = (carry, None) if carry is not None else (self._next(), None)
                if first is _STOP:
                    break
                if first is _WAKE:
                    continue
                batch, carry = batching.take_batch(self._queue, first, self.max_batch,
                                                   lambda job: job.crops, lambda item: isinstance(item, Job))
                with self._batch_running():
                    self._run_batch(batch)
        finally:
            if isinstance(carry, Job):
                carry.future.cancel()
            with self._gate:
                self._threads_alive -= 1
                last = self._threads_alive == 0
            if last:  # stopped (or crashed): nobody runs what still waits, nor these servables again
                for job in self._drain_all():
                    job.future.cancel()
                for servable in self._servables.values():
                    servable.close()
                self._servables.clear()

    def _next(self) -> Any:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._idle:  # nothing is waiting for an answer: now is the time for shadow work
            try:
                return self._idle.popleft()
            except IndexError:  # another inference thread took it
                pass
        return self._queue.get()

    @contextlib.contextmanager
    def _batch_running(self):
        """Counts the batch as running; waits first while control work waits or runs."""
        with self._gate:
            self._gate.wait_for(lambda: self._control_waiting == 0)
            self._batches_running += 1
        try:
            yield
        finally:
            with self._gate:
                self._batches_running -= 1
                self._gate.notify_all()

    def _call_on_thread(self, work: Callable[[], None]) -> None:
        self._control.append(work)
        self._wake()

    def _wake(self) -> None:
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # the thread is busy and looks at control work between batches anyway

    def _run_control(self) -> None:
        if not self._control:
            return
        with self._gate:  # alone: no batch runs meanwhile (and none starts until it is done)
            self._control_waiting += 1
            try:
                self._gate.wait_for(lambda: self._batches_running == 0)
                while self._control:
                    self._control.popleft()()
            finally:
                self._control_waiting -= 1
                self._gate.notify_all()

    def _warm_up(self, servable, done: Future) -> None:
        """Two real runs before the servable is offered: the first pays the backend's lazy set-up,
        the second measures the steady-state cost that orders the models of a batch."""
        blank = warm_up_rows(servable.spec)
        try:
            _run(servable, blank)
            started = time.perf_counter()
            _run(servable, blank)
        except Exception as error:
            servable.close()
            done.set_exception(RuntimeError(f"warm-up failed: {first_line(error)}"))
            return
        self._cost_ms[servable.key] = (time.perf_counter() - started) * 1000
        self._servables[servable.key] = servable
        done.set_result(Loaded(self._cost_ms[servable.key], servable.backend, servable.reason))

    def _run_batch(self, batch: list[Job]) -> None:
        now = time.monotonic()
        live = []
        for job in batch:
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller gave up and cancelled: drop the work
            if now > job.deadline:
                job.future.set_exception(Timeout("the request missed its deadline in the queue"))
                continue
            live.append(job)
        if not live:
            return
        started = time.perf_counter()
        feeds: dict[str, list[np.ndarray]] = {}
        calls: dict[str, list[Job]] = {}  # a SavedModel signature's named tensors, beside rows or not
        for job in live:
            for key, rows in job.feeds.items():
                if isinstance(rows, TensorCall):
                    calls.setdefault(key, []).append(job)
                else:
                    feeds.setdefault(key, []).append(rows)
        for key in batching.run_order(list(dict.fromkeys([*feeds, *calls])), self._cost_ms):
            if key in calls:
                self._run_calls(calls[key], key)
            if key not in feeds:
                continue
            run_started = time.perf_counter()
            output, error = self._try(key, np.concatenate(feeds[key]))
            _deliver(live, key, output, error)  # callers at their deadline take what has arrived
            if not error:
                batching.update_cost(self._cost_ms, key, (time.perf_counter() - run_started) * 1000)
        run_ms = (time.perf_counter() - started) * 1000
        if self.on_batch is not None:
            self.on_batch(sum(job.crops for job in live), run_ms)
        for job in live:
            job.future.set_result(Outcome(dict(job.results), dict(job.errors), (now - job.queued_at) * 1000, run_ms))

    def _run_calls(self, jobs: list[Job], key: str) -> None:
        """Named tensors: the calls that can share a run concatenated (service/serving/tensor_call.py),
        every other one alone; each job is handed its own examples' outputs. A shared run that fails is
        run again call by call, so one call's bad inputs fail that call alone."""
        calls = [job.feeds[key] for job in jobs]
        for group in tensor_call.groups(calls):
            output, error = self._try(key, tensor_call.merge([calls[i] for i in group]))
            parts = [None] * len(group)
            if not error:
                try:
                    parts = tensor_call.split(output, [len(calls[i]) for i in group])
                except ValueError as problem:
                    error = f"{_FAILED}{problem}"
            if error and len(group) > 1:
                for index in group:
                    self._run_calls([jobs[index]], key)
                continue
            if error.startswith(_FAILED):
                # The signature raised on these tensors: what the protocols could not check beforehand (an
                # input of unknown rank, a value the graph refuses) is the caller's. A servable that is not
                # loaded is not.
                error = tensor_call.REFUSED + error.removeprefix(_FAILED)
            for index, part in zip(group, parts):
                if error:
                    jobs[index].errors[key] = error
                else:
                    jobs[index].results[key] = part

    def _try(self, key: str, rows: np.ndarray | TensorCall) -> tuple[Any, str]:
        servable = self._servables.get(key)
        if servable is None:
            return None, f"{key} is not loaded"
        try:
            return _run(servable, rows), ""
        except Exception as error:
            log.error("inference_failed", servable=key, error=first_line(error))
            return None, f"{_FAILED}{first_line(error)}"

    def _drain_all(self) -> list[Job]:
        jobs = list(self._idle)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if isinstance(job, Job):
                jobs.append(job)


_FAILED = "inference failed: "  # what _try says when the servable raised


def _stopped() -> ModelUnavailable:
    return ModelUnavailable("the runtime stopped before answering", retry_after=1)


def _finished(future: Future) -> Outcome:
    """A done job's Outcome, or what it failed with (a Timeout in the queue; stopped if cancelled)."""
    if future.cancelled():
        raise _stopped()
    return future.result()


def _outcome_or_error(get: Callable[[], Outcome]) -> Outcome | Exception:
    try:
        return get()
    except Exception as error:
        return error


def _run(servable, feed: np.ndarray | TensorCall):
    """Rows -> output rows; a TensorCall (a SavedModel's named tensors) -> its named outputs."""
    return servable.run_tensors(feed) if isinstance(feed, TensorCall) else servable.run(feed)


def _deliver(jobs: list[Job], key: str, output: np.ndarray | None, error: str) -> None:
    """Hand each job its own rows of the batched output, in the order the jobs were batched (a job
    whose feed is a TensorCall is answered by Runtime._run_calls)."""
    start = 0
    for job in jobs:
        rows = job.feeds.get(key)
        if rows is None or isinstance(rows, TensorCall):
            continue
        if error:
            job.errors[key] = error
        else:
            job.results[key] = output[start:start + len(rows)]
        start += len(rows)

