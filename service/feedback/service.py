"""The feedback loop as the HTTP side holds it: one per process that serves HTTP (each API worker has its
own writer thread and connection pool), started and stopped with the CherryPy bus."""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import DBAPIError

from service.classify.request import request_id_ms
from service.errors import NotFound, PinpointError, first_line
from service.feedback import report as reports
from service.feedback.metrics import FeedbackMetrics, outcome
from service.feedback.recorder import Recorder, rows
from service.feedback.store import Choice, Recorded, Store
from service.feedback.writer import LogWriter

if TYPE_CHECKING:
    from service.engine import Engine

log = structlog.get_logger("pinpoint.feedback")
READY_WAIT_S = 2.0  # feedback waits this long for a database still being opened, then answers 503
# An answer reaches the log within milliseconds, but a busy replica's writer can be seconds behind: feedback
# for an answer at most this old that the log does not hold yet waits for it, up to this age.
LOG_WAIT_S = 5.0
# Which feedback may wait is read from the request id (service/classify/request.py: the time it was minted and this
# server's signature), so nothing a client makes up parks a thread:
# - an id this server signed, minted < LOG_WAIT_S ago: a real answer, which the client paid a classify
#   for; at most WAITERS_PER_ANSWER requests wait for the same one (its id may be posted many times);
# - an id of the server's form, recent, without this server's signature (another replica's answer, or a
#   forgery): in one of LOG_WAITERS threads per process, with at most SLOT_QUEUE more waiting SLOT_WAIT_S
#   for one; beyond them 503 overloaded (Retry-After: 1) at once;
# - anything else the log lacks: 404 at once.
WAITERS_PER_ANSWER = 2
LOG_WAITERS = 3
SLOT_QUEUE = 3
SLOT_WAIT_S = 1.0
POLL_S = (0.005, 0.01, 0.02, 0.05)  # the log is read again after these waits (then every 50 ms)


class StorageUnavailable(PinpointError):
    code = "storage_unavailable"


def busy() -> PinpointError:
    return PinpointError("feedback for answers not logged yet is waiting in too many requests; try again in a "
                         "second", code="overloaded", retry_after=1)


def storage_unavailable(what: str) -> StorageUnavailable:
    return StorageUnavailable(f"{what}: the feedback database cannot take writes now (a full disk, or the "
                              "database unreachable); the server log says why", retry_after=5)


class Feedback:
    def __init__(self, engine: Engine, registry):
        settings = engine.settings
        self.engine = engine
        self.enabled = settings.feedback
        if not self.enabled:
            return
        self.store = Store(settings.feedback_db)
        self._waiters = threading.BoundedSemaphore(LOG_WAITERS)
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = {}  # answers this server signed -> the requests waiting for them
        self._queued_for_slot = 0
        self.metrics = FeedbackMetrics(registry, self._rolling)
        self.recorder = Recorder(lambda: self.engine.settings.feedback_sample_rate, self._labels_of, self._submit)
        self.writer = LogWriter(self.store, settings.feedback_queue_size, rows,
                                retention_ms=lambda: int(self.engine.settings.feedback_retention_days * 86_400_000),
                                on_written=self._written, on_dropped=self._dropped,
                                on_depth=self.metrics.queue_depth.set)

    def subscribe(self, bus) -> None:
        if not self.enabled:
            return
        bus.subscribe("start", self.writer.start, priority=75)
        # After the HTTP server has finished its requests (25) and so queued their answers.
        bus.subscribe("stop", self.stop, priority=45)

    def stop(self) -> None:
        self.writer.stop(timeout=max(5.0, self.engine.settings.drain_timeout_s))
        self.store.close()

    # ---- classify answers -> the log ----
    def record_answer(self, request, result, client: str | None) -> None:
        """Called by the classify handler with its typed request and result; never fails the answer."""
        if not self.enabled:
            return
        try:
            self.recorder.record(request, result, client)
        except Exception as error:
            self._dropped("write_failed", 1)
            log.exception("prediction_log_record_failed", error=str(error)[:300])

    def _submit(self, pending) -> bool:
        queued = self.writer.submit(pending)
        if queued:
            self.metrics.queue_depth.set(self.writer.queue.qsize())
        return queued

    def _labels_of(self, model: str, version: int) -> list[str] | None:
        for entry in self.engine.manager.snapshot().get(model, []):
            if entry.version == version and entry.spec is not None:
                return list(entry.spec.labels)
        return None

    def _written(self, answers, rows: int) -> None:
        self.metrics.logged.inc(rows)
        for answer in answers:
            self.recorder.written(answer)

    def _dropped(self, reason: str, count: int) -> None:
        self.metrics.dropped.labels(reason).inc(count)

    # ---- feedback ----
    def record(self, choices: list[Choice], client: str | None, batch: bool = False) -> list[Recorded]:
        """Store the choices of `client` (the API key's name; None without keys): only on its own answers."""
        self._available()
        ids = {choice.request_id for choice in choices}
        missing = self._missing(ids)
        if missing:
            self._wait_for_log(missing)
        try:
            recorded = self.store.record(choices, client, batch)
        except DBAPIError as error:
            log.error("feedback_write_failed", error=first_line(error))
            raise storage_unavailable("feedback was not stored") from None
        for done in recorded:
            self.metrics.feedback.labels(done.choice.model, str(done.version),
                                         outcome(done.rank, done.choice.label)).inc()
        return recorded

    def _missing(self, ids: set[str]) -> set[str]:
        try:
            return self.store.missing(ids)
        except DBAPIError as error:
            log.error("feedback_read_failed", error=first_line(error))
            raise storage_unavailable("the prediction log cannot be read") from None

    def _wait_for_log(self, missing: set[str]) -> None:
        """Wait for answers that may still be on their way to the log, never for anything else (the
        rules are above LOG_WAIT_S). While the log cannot be written, 503 at once: waiting cannot help."""
        if self.writer.failing:
            raise storage_unavailable("the answer may not have been logged")
        now = time.time() * 1000
        minted = [request_id_ms(request_id) for request_id in missing]
        if any(mint is None or not now - LOG_WAIT_S * 1000 <= mint[0] <= now + 1000 for mint in minted):
            return  # not an id minted in the last few seconds: it is not on its way
        deadline = time.monotonic() + min(LOG_WAIT_S, max(mint[0] for mint in minted) / 1000 + LOG_WAIT_S - now / 1000)
        if all(signed for _, signed in minted):
            return self._wait_for_answers(missing, deadline)
        if not self._slot():
            raise busy()
        try:
            self._poll(missing, deadline)
        finally:
            self._waiters.release()

    def _slot(self) -> bool:
        if self._waiters.acquire(blocking=False):
            return True
        with self._lock:
            if self._queued_for_slot >= SLOT_QUEUE:
                return False
            self._queued_for_slot += 1
        try:
            return self._waiters.acquire(timeout=SLOT_WAIT_S)
        finally:
            with self._lock:
                self._queued_for_slot -= 1

    def _wait_for_answers(self, missing: set[str], deadline: float) -> None:
        with self._lock:
            if any(self._waiting.get(request_id, 0) >= WAITERS_PER_ANSWER for request_id in missing):
                raise busy()
            for request_id in missing:
                self._waiting[request_id] = self._waiting.get(request_id, 0) + 1
        try:
            self._poll(missing, deadline)
        finally:
            with self._lock:
                for request_id in missing:
                    self._waiting[request_id] -= 1
                    if not self._waiting[request_id]:
                        del self._waiting[request_id]

    def _poll(self, missing: set[str], deadline: float) -> None:
        """Read the log again, sooner at first, until it holds every id or the deadline passes."""
        for attempt in itertools.count():
            if self.writer.failing:
                raise storage_unavailable("the answer may not have been logged")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, POLL_S[min(attempt, len(POLL_S) - 1)]))
            missing = self._missing(missing)
            if not missing:
                return

    # ---- reports ----
    def report(self, **filters) -> dict:
        self._available()
        try:
            return reports.build(self.store, **filters)
        except DBAPIError as error:
            log.error("feedback_read_failed", error=first_line(error))
            raise storage_unavailable("the report cannot be read") from None

    def _rolling(self) -> dict:
        if not self.writer.ready.is_set():
            return {}
        return reports.rolling_top1(self.store, int(self.engine.settings.feedback_hit_rate_window_s * 1000))

    def _available(self) -> None:
        if not self.enabled:
            raise NotFound("feedback is off on this server (feedback = false)")
        # Waiting helps only while the database is being opened for the first time, not once that failed.
        if not self.writer.ready.is_set() and (self.writer.failing or not self.writer.ready.wait(READY_WAIT_S)):
            raise StorageUnavailable("the feedback database cannot be reached yet; the server log says why",
                                     retry_after=5)
