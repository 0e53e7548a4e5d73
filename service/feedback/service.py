"""The feedback loop as the HTTP side holds it: one per process that serves HTTP (each API worker has its
own writer thread and connection pool), started and stopped with the CherryPy bus."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from service.errors import NotFound, PinpointError
from service.feedback import report as reports
from service.feedback.metrics import FeedbackMetrics, outcome
from service.feedback.recorder import Recorder, rows
from service.feedback.store import Choice, Recorded, Store
from service.feedback.writer import LogWriter

if TYPE_CHECKING:
    from service.engine import Engine

log = structlog.get_logger("pinpoint.feedback")
READY_WAIT_S = 2.0  # feedback waits this long for a database still being opened, then answers 503
# Feedback for a request whose log row is still on its way (in this process's queue or another replica's)
# waits at most this long: a busy replica's writer can be seconds behind on a loaded machine.
LOG_WAIT_S = 5.0


class StorageUnavailable(PinpointError):
    code = "storage_unavailable"


class Feedback:
    def __init__(self, engine: Engine, registry):
        settings = engine.settings
        self.engine = engine
        self.enabled = settings.feedback
        if not self.enabled:
            return
        self.store = Store(settings.feedback_db)
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
        self._available()
        ids = {choice.request_id for choice in choices}
        missing = self.store.missing(ids)
        if missing:
            # Its answer may still be on its way to the log: in this process's queue, or another's.
            deadline = time.monotonic() + LOG_WAIT_S
            self.writer.flush(LOG_WAIT_S / 2)
            missing = self.store.missing(missing)
            while missing and time.monotonic() < deadline:
                time.sleep(0.05)
                missing = self.store.missing(missing)
        recorded = self.store.record(choices, client, batch)
        for done in recorded:
            self.metrics.feedback.labels(done.choice.model, str(done.version),
                                         outcome(done.rank, done.choice.label)).inc()
        return recorded

    # ---- reports ----
    def report(self, **filters) -> dict:
        self._available()
        return reports.build(self.store, **filters)

    def _rolling(self) -> dict:
        if not self.writer.ready.is_set():
            return {}
        return reports.rolling_top1(self.store, int(self.engine.settings.feedback_hit_rate_window_s * 1000))

    def _available(self) -> None:
        if not self.enabled:
            raise NotFound("feedback is off on this server (feedback = false)")
        if not self.writer.ready.wait(READY_WAIT_S):
            raise StorageUnavailable("the feedback database cannot be reached yet; the server log says why",
                                     retry_after=5)
