"""The inference thread: the one place TensorFlow runs (TF Serving's "manager", in one thread).

Every model's graph is imported into one tf.Graph with one session, created on this thread after the
process has daemonized, and every session.run happens here. Request threads hand work over with
submit(), which returns a Future; the thread batches opportunistically: it takes everything already
waiting (up to max_batch crops), runs once, and hands results back. It never waits for a batch to
fill, so an idle server answers a lone request at once.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import structlog

from service.errors import ModelUnavailable, Overloaded, Timeout
from service.repository import ModelSpec

log = structlog.get_logger("pinpoint.runtime")

_STOP = object()


@dataclasses.dataclass
class ModelStatus:
    spec: ModelSpec | None
    name: str
    version: int
    state: str = "LOADING"  # TF Serving's words: LOADING, AVAILABLE, END (failed or unloaded)
    error: str = ""
    load_ms: float = 0.0


@dataclasses.dataclass
class Outcome:
    outputs: dict[str, np.ndarray]  # model -> [N, classes] raw output rows, one per crop
    errors: dict[str, str]  # model -> why it produced nothing
    queue_ms: float
    run_ms: float


@dataclasses.dataclass
class Job:
    """Work for the inference thread; results and errors fill in model by model as runs finish."""

    feeds: dict[str, np.ndarray]  # model -> prepared inputs, N rows each
    deadline: float  # time.monotonic() after which nobody waits for the answer
    future: Future = dataclasses.field(default_factory=Future)
    queued_at: float = dataclasses.field(default_factory=time.monotonic)
    results: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def crops(self) -> int:
        return max((len(rows) for rows in self.feeds.values()), default=0)


class Runtime:
    def __init__(self, specs: tuple[ModelSpec, ...], *, max_batch: int = 32, queue_size: int = 256,
                 intra_op_threads: int = 2, inter_op_threads: int = 1, fuse_models: bool = True):
        self.max_batch = max_batch
        self.fuse_models = fuse_models
        self.models = {spec.name: ModelStatus(spec, spec.name, spec.version) for spec in specs}
        self._intra, self._inter = intra_op_threads, inter_op_threads
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._carry: Job | None = None
        self._cost_ms: dict[str, float] = {}
        self.on_batch = None  # optional callable(crops, run_ms), e.g. for metrics
        self.thread_ident: int | None = None

    # ---- lifecycle (called by the engine plugin) ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="pinpoint-runtime", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)  # blocks only while the queue is full; the thread is draining it
        self._thread.join(timeout)
        self._thread = None
        self._ready.clear()

    # ---- request threads ----
    def submit(self, feeds: dict[str, np.ndarray], deadline: float) -> Job:
        """Queue the work; job.future resolves to an Outcome once every model has answered."""
        if not self._ready.is_set():
            raise ModelUnavailable("the models are still loading", retry_after=1)
        job = Job(feeds, deadline)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Overloaded("the inference queue is full", retry_after=1) from None
        return job

    # ---- the inference thread ----
    def _main(self) -> None:
        self.thread_ident = threading.get_ident()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf  # imported here: TensorFlow is never touched before this thread runs

        from service.loader import import_servable

        graph = tf.Graph()
        self._servables = {}
        for status in self.models.values():
            started = time.perf_counter()
            try:
                self._servables[status.name] = import_servable(graph, status.spec)
            except Exception as error:
                status.state, status.error = "END", str(error)
                log.error("model_load_failed", model=status.name, version=status.version, error=str(error))
            status.load_ms = (time.perf_counter() - started) * 1000
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=self._intra,
                                          inter_op_parallelism_threads=self._inter)
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        graph.finalize()  # nothing may add ops after start: a per-request op would leak memory
        for name, servable in self._servables.items():
            status = self.models[name]
            started = time.perf_counter()
            try:
                self._warm_up(servable)
                warm_started = time.perf_counter()
                self._warm_up(servable)  # the second run is the steady-state cost
                self._cost_ms[name] = (time.perf_counter() - warm_started) * 1000
                status.state = "AVAILABLE"
            except Exception as error:
                status.state, status.error = "END", f"warm-up failed: {error}"
                log.error("model_warm_up_failed", model=name, error=str(error))
            status.load_ms = round(status.load_ms + (time.perf_counter() - started) * 1000, 1)
            log.info("model_loaded", model=name, version=status.version, state=status.state,
                     load_ms=status.load_ms, labels=len(status.spec.labels))
        self._warm_up_fused()
        self._ready.set()
        try:
            while True:
                batch = self._take_batch()
                if batch is None:
                    break
                self._run_batch(batch)
        finally:
            self._session.close()
            for job in self._drain_all():
                job.future.cancel()

    def _warm_up(self, servable) -> None:
        """One real inference, so the first request does not pay for TensorFlow's lazy set-up."""
        from service.preprocess import prepare

        spec = servable.spec.input
        blank = np.full((1, spec.height, spec.width, spec.channels), 128, np.uint8)
        self._run_model(servable, prepare(spec, blank))

    def _warm_up_fused(self) -> None:
        """TensorFlow prepares each distinct set of fetches on its first run: do the fused one now too."""
        from service.preprocess import prepare

        available = [s for name, s in self._servables.items()
                     if s.batched and self.models[name].state == "AVAILABLE"]
        if not self.fuse_models or len(available) < 2:
            return
        feeds = {}
        for servable in available:
            spec = servable.spec.input
            feeds[servable.name] = prepare(spec, np.full((1, spec.height, spec.width, spec.channels), 128, np.uint8))
        self._run_group(feeds)

    def _take_batch(self) -> list[Job] | None:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is _STOP:
            return None
        batch, crops = [first], first.crops
        while crops < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP or crops + job.crops > self.max_batch:
                self._carry = job  # runs next time round (or stops the loop)
                break
            batch.append(job)
            crops += job.crops
        return batch

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
        for job in live:
            for name, rows in job.feeds.items():
                feeds.setdefault(name, []).append(rows)
        slack_ms = (min(job.deadline for job in live) - time.monotonic()) * 1000
        for group in self._groups(feeds, slack_ms):
            group_started = time.perf_counter()
            outputs, errors = self._run_group({name: np.concatenate(feeds[name]) for name in group})
            _deliver(live, group, outputs, errors)  # callers at their deadline take what has arrived
            self._note_cost(group, (time.perf_counter() - group_started) * 1000)
        run_ms = (time.perf_counter() - started) * 1000
        if self.on_batch is not None:
            self.on_batch(sum(job.crops for job in live), run_ms)
        for job in live:
            job.future.set_result(Outcome(dict(job.results), dict(job.errors), (now - job.queued_at) * 1000, run_ms))

    def _groups(self, feeds: dict[str, list], slack_ms: float) -> list[list[str]]:
        """Which models share a session.run, in which order.

        Fused, one run fetches every batched model: the cheapest way through. But its answers all
        arrive at its end, so when the tightest deadline in the batch leaves less than twice the
        run's expected time, the models run one by one, cheapest first, and whoever is cut off at the
        deadline still gets the models that finished (a partial answer)."""
        batched = [name for name in feeds if name in self._servables and self._servables[name].batched]
        others = [[name] for name in feeds if name not in batched]
        expected_ms = sum(self._cost_ms.get(name, 0.0) for name in batched)
        if self.fuse_models and batched and slack_ms > 2 * expected_ms:
            groups = [batched, *others]
        else:
            groups = [[name] for name in batched] + others
        return sorted(groups, key=lambda group: sum(self._cost_ms.get(name, 0.0) for name in group))

    def _note_cost(self, group: list[str], elapsed_ms: float) -> None:
        """A moving average of each model's run time; a fused run's time is shared out in proportion
        to what each model was expected to cost, so the estimates stay comparable."""
        expected = {name: self._cost_ms.get(name, 0.0) for name in group}
        total = sum(expected.values())
        for name in group:
            share = elapsed_ms * (expected[name] / total if total > 0 else 1 / len(group))
            previous = self._cost_ms.get(name)
            self._cost_ms[name] = share if previous is None else 0.8 * previous + 0.2 * share

    def _run_group(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """One session.run for the group; per-model runs only to find which model failed."""
        outputs, errors = {}, {}
        for name in list(feeds):
            if name not in self._servables or self.models[name].state != "AVAILABLE":
                errors[name] = f"model {name} is not available"
                del feeds[name]
        if len(feeds) == 1:
            (name, rows), = feeds.items()
            outputs[name], error = self._try(self._servables[name], rows)
            if error:
                errors[name] = error
            return outputs, errors
        if not feeds:
            return outputs, errors
        try:
            fetched = self._session.run(
                {name: self._servables[name].output for name in feeds},
                {self._servables[name].input: rows for name, rows in feeds.items()})
            for name, rows in feeds.items():
                outputs[name] = _rows(fetched[name], len(rows))
        except Exception:
            for name, rows in feeds.items():
                outputs[name], error = self._try(self._servables[name], rows)
                if error:
                    errors[name] = error
        return outputs, errors

    def _try(self, servable, rows: np.ndarray) -> tuple[np.ndarray | None, str]:
        try:
            return self._run_model(servable, rows), ""
        except Exception as error:
            log.error("inference_failed", model=servable.name, error=str(error).splitlines()[0][:300])
            return None, f"inference failed: {str(error).splitlines()[0][:300]}"

    def _run_model(self, servable, rows: np.ndarray) -> np.ndarray:
        if servable.batched:
            return _rows(self._session.run(servable.output, {servable.input: rows}), len(rows))
        # A scalar input (classic retrain.py graphs) takes one image per run.
        return np.stack([_rows(self._session.run(servable.output, {servable.input: row}), 1)[0] for row in rows])

    def _drain_all(self) -> list[Job]:
        jobs = [self._carry] if isinstance(self._carry, Job) else []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if isinstance(job, Job):
                jobs.append(job)


def _deliver(jobs: list[Job], models: list[str], outputs: dict[str, np.ndarray], errors: dict[str, str]) -> None:
    """Hand each job its own rows of the batched outputs, in the order the jobs were batched."""
    for name in models:
        start = 0
        for job in jobs:
            rows = job.feeds.get(name)
            if rows is None:
                continue
            if name in errors:
                job.errors[name] = errors[name]
            else:
                job.results[name] = outputs[name][start:start + len(rows)]
            start += len(rows)


def _rows(output: np.ndarray, count: int) -> np.ndarray:
    """Model output -> [count, classes] floats, accepting graphs that drop the batch axis."""
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 1:
        output = output[np.newaxis, :]
    output = output.reshape(output.shape[0], -1)
    if output.shape[0] != count:
        raise ValueError(f"the model returned {output.shape[0]} rows for {count} inputs")
    return output
