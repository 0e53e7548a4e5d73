"""The Pinpoint application in the test process, on a real port: the server most HTTP tests ask.

`pinpoint serve` with `workers = 0` runs an Engine, the CherryPy application (service/http/app.py), the
engine plugin and the waitress server beneath it (service/http/server.py) on CherryPy's bus. Here the same
pieces start on the bus of the test process, on a free port, without signals, daemon or announcement.
Tests speak HTTP to it with `requests` as to a subprocess, so what the HTTP server decides (framing, body
limits read from Content-Length, a POST without a length, Connection: close, a raw socket's bytes) is
what they see. What is saved is the process: starting `pinpoint serve` (TensorFlow's import, the models'
load) takes ~5 s, ~9 s with API workers, on the suite's 2 cores; the application starts here in ~1 s.

Calling the WSGI callable directly, with no socket, was measured and not chosen: it would save about a
millisecond of the ~1.6 ms a request takes over loopback, and it would skip waitress, whose refusals and
limits the tests check.

Subprocess servers (fixtures.start_server) stay for what a process is about: signals, API workers and
the runner, daemons, a process's pid, memory and log, and the browser tests.

CherryPy keeps one tool registry and one bus per process, so one application runs at a time: an
in-process server whose turn it is not starts again when a test asks it (`url`), after the one running
stops (about a second together, measured). A test asks one in-process server only.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from fixtures import Client, free_port, wait_until

_lock = threading.Lock()
_running: InProcessServer | None = None
_bus_used = False  # whether any in-process server started: then the bus is ended at the session's end
_log_file = None  # where the process's log lines go: the running server's log


class InProcessServer(Client):
    """One configuration of the application: the environment and flags a subprocess would be given."""

    def __init__(self, tmp: Path, models: Path, labels: Path, env: dict | None = None, wait_ready: bool = True,
                 config: Path | None = None, **flags):
        tmp.mkdir(parents=True, exist_ok=True)
        self.wait_ready = wait_ready  # else a start waits for /healthz only (versions that fail keep /readyz 503)
        self.log_path = tmp / "server-inprocess.log"
        # As fixtures.start_server gives its process, but everything in one process (workers = 0).
        self.environ = {"PINPOINT_UPLOAD_DIR": str(tmp / "uploads"), "PINPOINT_LOG_FORMAT": "json",
                        "PINPOINT_FEEDBACK_DB": str(tmp / "feedback.db"), **(env or {}), "PINPOINT_WORKERS": "0"}
        self.flags = {"models": str(models), "labels": str(labels), **flags}
        self.config = config  # a settings file, as `--config`
        self.engine = self._http = self._log_handler = None
        self._url = ""

    @property
    def url(self) -> str:
        """Where it answers; started first if another in-process server (or none) was running."""
        global _running
        with _lock:
            if _running is not self:
                if _running is not None:
                    _running._stop()
                _running = None
                self._start()
                _running = self
            self._keep_logging()
        return self._url

    def start(self) -> InProcessServer:
        """Start it now (else the first request does), so a fixture's setup time shows what it costs."""
        assert self.url
        return self

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        """Stop it if it runs (a module's own server, at the module's end)."""
        global _running
        with _lock:
            if _running is self:
                self._stop()
                _running = None

    def alive(self) -> bool:
        """Still serving: its HTTP server's loop runs (what a subprocess's being alive says of it)."""
        return _running is self and self._http is not None and self._http.ready

    # ---- the bus ----
    def _start(self) -> None:
        import cherrypy

        from service.config import load_settings
        from service.http.app import assemble

        global _bus_used
        _bus_used = True
        bus = cherrypy.engine
        # Each start subscribes listeners (the engine plugin, the feedback writer, the settings channel);
        # they are taken off again at the stop, with their priorities.
        self._listeners = {channel: set(listeners) for channel, listeners in bus.listeners.items()}
        self._priorities = dict(bus._priorities)
        settings = load_settings(self.config, environ={**os.environ, **self.environ},
                                 overrides={**self.flags, "port": free_port()})
        self.settings = settings
        self._route_logs()
        self._url = f"http://127.0.0.1:{settings.port}"
        try:
            # The server `pinpoint serve` runs in one process, less the parts about being a process.
            self.engine, _ = assemble(settings, bus)
            self._http = cherrypy.server.httpserver
            bus.start()
            wait_until(self._url + ("/readyz" if self.wait_ready else "/healthz"), timeout=90)
        except BaseException:
            self._stop()  # the bus as it was found, for the next server
            raise

    def _stop(self) -> None:
        """Stop the bus (the HTTP server drains, the engine stops), then leave it as it was found."""
        import cherrypy

        bus = cherrypy.engine
        bus.stop()
        bus.listeners.clear()
        bus.listeners.update(self._listeners)
        bus._priorities.clear()
        bus._priorities.update(self._priorities)
        cherrypy.tree.apps.pop("", None)
        cherrypy.server.httpserver = None
        self._http = None

    # ---- its log: the JSON lines `pinpoint serve` writes to stderr, into its own file ----
    def _route_logs(self) -> None:
        from service.observe import configure_logging

        global _log_file
        configure_logging(self.settings.log_level, "json")
        self._log_handler = logging.getLogger().handlers[0]
        if _log_file is not None:
            _log_file.close()  # the previous server's, whose handler configure_logging just replaced
        _log_file = open(self.log_path, "a", buffering=1)  # noqa: SIM115 (open while the server logs)
        self._log_handler.setStream(_log_file)

    def _keep_logging(self) -> None:
        """Logging is the process's: if something in a test configured it since, route it back here."""
        if self._log_handler not in logging.getLogger().handlers:
            self._route_logs()


def stop_running() -> None:
    """At the end of the session: stop whichever in-process server runs, and end the bus."""
    import cherrypy

    global _running
    with _lock:
        if _running is not None:
            _running._stop()
        _running = None
        if _bus_used:
            cherrypy.engine.exit()  # else CherryPy warns, as the interpreter exits, that nothing ended it
