"""The deadlines' thread: actions at their time, in time order, none after it was cancelled."""

from __future__ import annotations

import queue
import time

from service.serving.deadlines import Deadlines


def test_actions_run_at_their_time_in_time_order_and_a_cancelled_one_never():
    deadlines, ran = Deadlines(), queue.Queue()
    start = time.monotonic()
    deadlines.at(start + 1.5, lambda: ran.put(("late", time.monotonic())))
    time.sleep(0.05)  # the thread now sleeps until the late one
    deadlines.at(start + 0.1, lambda: ran.put(("soon", time.monotonic())))  # earlier than what the thread sleeps until
    deadlines.at(start + 0.2, lambda: ran.put(("cancelled", time.monotonic()))).cancel()
    first, second = ran.get(timeout=5), ran.get(timeout=5)
    assert [first[0], second[0]] == ["soon", "late"]
    assert start + 0.1 <= first[1] < start + 1.0  # woken for it, not at the deadline it was sleeping until
    assert second[1] >= start + 1.5
    time.sleep(0.1)
    assert ran.empty()


def test_an_action_that_fails_does_not_stop_the_others():
    deadlines, ran = Deadlines(), queue.Queue()
    now = time.monotonic()
    deadlines.at(now, lambda: 1 / 0)
    deadlines.at(now + 0.05, lambda: ran.put("after"))
    assert ran.get(timeout=5) == "after"
