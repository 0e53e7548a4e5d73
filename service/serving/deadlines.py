"""Deadlines nobody waits on: one thread that runs an action when its time comes, unless it was
cancelled first.

The model runner answers a worker's call from the inference thread as soon as the job is done, so no
thread sits waiting on each call (service/serving/runtime.Runtime.infer_then); the answer a call is
owed at its deadline (a partial one, or a timeout) is sent from here instead. Almost every job ends
long before its deadline, so the thread must not wake per job: a cancelled entry stays in the heap
until the thread wakes for the earliest deadline anyway, and is dropped then. With the same deadline
for every request, that is one wake-up per deadline's length, whatever the load; the heap holds only
the cancelled entries' few bytes (a cancelled entry lets go of its action, and what that held).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("pinpoint.runtime")


class Deadline:
    """One scheduled action; `cancel()` once the work it stands guard over is done."""

    __slots__ = ("when", "action")

    def __init__(self, when: float, action: Callable[[], None]):
        self.when, self.action = when, action

    def cancel(self) -> None:
        self.action = None  # an atomic store: the watching thread drops the entry when it gets to it


class Deadlines:
    """`at(when, action)` runs `action` on the watching thread at time.monotonic() `when`, unless cancelled."""

    def __init__(self, name: str = "pinpoint-deadlines"):
        self._name = name
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()  # ties broken by arrival, never by comparing Deadlines
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def at(self, when: float, action: Callable[[], None]) -> Deadline:
        deadline = Deadline(when, action)
        with self._changed:
            heapq.heappush(self._heap, (when, next(self._order), deadline))
            if self._thread is None:
                thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
                thread.start()  # before it is kept: one that failed to start is tried again next time
                self._thread = thread
            elif self._heap[0][2] is deadline:
                self._changed.notify()  # earlier than what the thread sleeps until
        return deadline

    def _watch(self) -> None:
        while True:
            with self._changed:
                due = self._wait_for_due()
            for deadline in due:
                action = deadline.action
                if action is None:
                    continue  # cancelled meanwhile
                deadline.action = None
                try:
                    action()
                except Exception:  # a bug in one action must not stop the deadlines of the others
                    log.exception("deadline_action_failed")

    def _wait_for_due(self) -> list[Deadline]:
        """Under the lock: sleep until the earliest live deadline, then take every one that is due."""
        heap = self._heap
        while True:
            while heap and heap[0][2].action is None:
                heapq.heappop(heap)
            if not heap:
                self._changed.wait()
                continue
            wait = heap[0][0] - time.monotonic()
            if wait > 0:
                self._changed.wait(wait)
                continue
            due = []
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap)[2])
            return due
