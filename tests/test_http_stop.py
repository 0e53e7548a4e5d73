"""Stopping the HTTP server when its event loop can no longer be woken through its trigger."""

from __future__ import annotations

import errno
import time

import requests

from inprocess import InProcessServer


def test_a_stop_whose_wake_up_fails_still_drains_within_a_tick(tmp_path, repository):
    """A stop racing the end of the event loop once found the loop's trigger closed (EBADF) and left a
    traceback and an undrained worker. The loop also looks at least every TICK_S (0.25 s) on its own,
    so a stop that cannot pull the trigger still drains: here the pull fails on purpose."""
    models, labels = repository
    server = InProcessServer(tmp_path, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0"}).start()
    try:
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        http = server._http

        def closed_trigger():
            raise OSError(errno.EBADF, "Bad file descriptor")

        http._server.pull_trigger = closed_trigger
        started = time.monotonic()
        http.stop()  # raised OSError before
        assert not http.ready and time.monotonic() - started < 2
        assert "http_trigger_closed" in server.log()
    finally:
        server.stop()
