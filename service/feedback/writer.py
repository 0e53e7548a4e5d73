"""The log writer: a bounded queue in front of one thread that writes the prediction log in batches.

The classify path only puts an answer in the queue, without waiting: when the queue is full the answer
is not logged, and that is counted (pinpoint_prediction_log_dropped_total{reason="queue_full"}) and
logged, never silent, never a failed answer. The thread takes whatever is waiting (up to BATCH answers)
and writes it in one transaction; a failed write is tried again a few times, then counted and logged as
lost (reason "write_failed"). The same thread opens the database (creating or migrating its tables) and
deletes what is past its retention, so the request threads never wait for either.

A transaction costs about the same whatever it holds (SQLite through SQLAlchemy, 2026 on this 2-core
machine: 1.2 ms of CPU for one answer, 0.26 ms per answer for five, 0.1 ms for twenty), so under load the
writer writes at most once per WRITE_EVERY_S, taking everything that arrived meanwhile: an answer after a
quiet spell is written at once, one under load waits at most WRITE_EVERY_S (feedback on it waits for the
log, service/feedback/service.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog

from service.errors import first_line
from service.feedback.schema import SchemaTooNew
from service.feedback.store import LoggedAnswer, Store, now_ms

log = structlog.get_logger("pinpoint.feedback")
BATCH = 500  # answers per transaction at most
WRITE_EVERY_S = 0.1  # under load, one transaction per this long at most (see above)
RETRIES_S = (0.2, 1.0, 3.0)  # waits before trying a failed batch again
OPEN_RETRY_S = (0.5, 1, 2, 5, 10, 30)  # waits between attempts to reach the database at start
SWEEP_EVERY_S = 3600
_WAKE = object()  # put by stop(), so a writer waiting on an empty queue stops at once, not at its next poll
DROP_LOG_EVERY_S = 10.0


class LogWriter:
    def __init__(self, store: Store, capacity: int, build: Callable[[object], LoggedAnswer],
                 retention_ms: Callable[[], int], on_written=None, on_dropped=None, on_depth=None):
        self.store = store
        self.queue: queue.Queue = queue.Queue(capacity)
        self.build = build  # pending answer -> its rows, here in the writer's thread
        self.retention_ms = retention_ms  # read at each sweep, so a reload's retention applies
        self.on_written = on_written or (lambda answers, rows: None)
        self.on_dropped = on_dropped or (lambda reason, count: None)
        self.on_depth = on_depth or (lambda depth: None)
        self.ready = threading.Event()  # the database is reachable and its schema current
        self.failing = False  # the last write failed (a full disk, the database gone): answers are not logged
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped_unlogged = 0
        self._last_drop_log = 0.0
        self._drop_lock = threading.Lock()
        self._next_sweep = 0.0
        self._last_write = -WRITE_EVERY_S

    # ---- the request side ----
    def submit(self, pending) -> bool:
        """Queue an answer for the log; never blocks. False when the queue was full (counted, logged)."""
        try:
            self.queue.put_nowait(pending)
        except queue.Full:
            self._dropped("queue_full", 1)
            return False
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is written (or given up); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True

    # ---- lifecycle ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pinpoint-log-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (within `timeout`), then stop; what could not be written is counted."""
        self._stopping.set()
        try:
            self.queue.put_nowait(_WAKE)
        except queue.Full:  # the writer is busy with a full queue: it sees _stopping after this batch
            pass
        if self._thread is not None:
            self._thread.join(timeout)
        left = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            self.queue.task_done()
            left += item is not _WAKE
        if left:
            self._dropped("shutdown", left)
            log.error("prediction_log_dropped", answers=left, reason="shutdown",
                      hint="the database did not take them within the stop timeout")
        self._log_drops(force=True)

    # ---- the writer's thread ----
    def _run(self) -> None:
        self._open()
        while not (self._stopping.is_set() and self.queue.empty()):
            try:
                first = self.queue.get(timeout=0.5)
            except queue.Empty:
                self._housekeeping()
                continue
            taken = [first]
            wait = self._last_write + WRITE_EVERY_S - time.monotonic()
            if wait > 0 and first is not _WAKE:
                # Gather by sleeping, not by waiting on the queue: a get() per answer would wake this
                # thread (and take the GIL from the request threads) once per answer; stop() ends the sleep.
                self._stopping.wait(wait)
            while len(taken) < BATCH and taken[-1] is not _WAKE:
                try:
                    taken.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self.on_depth(self.queue.qsize())
            batch = [item for item in taken if item is not _WAKE]
            try:
                if batch:
                    self._write(batch)
                    self._last_write = time.monotonic()
            finally:
                for _ in taken:
                    self.queue.task_done()
            self._housekeeping()

    def _open(self) -> None:
        for attempt in range(10**9):
            try:
                was, now = self.store.migrate()
            except SchemaTooNew as error:
                log.error("feedback_database_refused", database=self.store.describe(), error=str(error))
                return  # never ready: feedback answers 503, and the log says why
            except Exception as error:
                self.failing = True  # feedback answers 503 at once instead of waiting for the database
                delay = OPEN_RETRY_S[min(attempt, len(OPEN_RETRY_S) - 1)]
                log.error("feedback_database_unreachable", database=self.store.describe(),
                          error=first_line(error), retry_in_s=delay)
                if self._stopping.wait(delay):
                    return
                continue
            self.failing = False
            if was != now:
                log.info("feedback_database_migrated", database=self.store.describe(), schema_from=was,
                         schema_to=now)
            self.ready.set()
            return

    def _write(self, batch: list) -> None:
        if not self.ready.is_set():  # stopping before the database was ever reached
            self._dropped("write_failed", len(batch))
            log.error("prediction_log_write_failed", answers=len(batch), error="the database was not reached")
            return
        answers = []
        for pending in batch:
            try:
                answers.append(self.build(pending))
            except Exception as error:  # one malformed answer must not cost the batch
                self._dropped("write_failed", 1)
                log.exception("prediction_log_row_failed", error=str(error)[:300])
        for attempt, wait in enumerate((*RETRIES_S, None)):
            try:
                rows = self.store.write_log(answers)
            except Exception as error:
                # One failure may be passing (a deadlock the database broke, a dropped connection): feedback
                # keeps waiting for these answers. A retry that fails too means the log cannot be written
                # (a full disk, the database gone), and feedback answers 503 at once until a write succeeds.
                self.failing = self.failing or attempt > 0
                if wait is None or (self._stopping.is_set() and attempt > 0):
                    self._dropped("write_failed", len(answers))
                    log.error("prediction_log_write_failed", answers=len(answers),
                              error=first_line(error))
                    return
                log.warning("prediction_log_write_retry", answers=len(answers), retry_in_s=wait,
                            error=first_line(error))
                time.sleep(wait)
                continue
            self.failing = False
            self.on_written(answers, rows)
            return

    def _housekeeping(self) -> None:
        self._log_drops()
        if self.ready.is_set() and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + min(SWEEP_EVERY_S, max(1.0, self.retention_ms() / 4000))
            try:
                deleted = self.store.sweep(now_ms() - self.retention_ms())
            except Exception as error:
                log.error("feedback_retention_sweep_failed", error=first_line(error))
                return
            if deleted:
                log.info("feedback_retention_swept", requests=deleted)

    # ---- counting what was not logged ----
    def _dropped(self, reason: str, count: int) -> None:
        """Count answers that will not be logged; the callers of other reasons log each case themselves."""
        self.on_dropped(reason, count)
        if reason != "queue_full":
            return
        with self._drop_lock:
            self._dropped_unlogged += count
            first = self._last_drop_log == 0.0
        if first:
            self._log_drops(force=True)

    def _log_drops(self, force: bool = False) -> None:
        """A full queue is logged at once, then at most once per DROP_LOG_EVERY_S with the count since."""
        with self._drop_lock:
            now = time.monotonic()
            if not self._dropped_unlogged or (not force and now - self._last_drop_log < DROP_LOG_EVERY_S):
                return
            count, self._dropped_unlogged, self._last_drop_log = self._dropped_unlogged, 0, now
        log.warning("prediction_log_dropped", answers=count, reason="queue_full", queue_size=self.queue.maxsize,
                    hint="raise feedback_queue_size, or look at the database's speed (docs/feedback.md)")
