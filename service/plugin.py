"""The CherryPy engine plugin that owns the engine's lifecycle (and so the inference thread).

It starts after CherryPy's Daemonizer (priority 65), so TensorFlow is first touched in the daemon
process, on the runtime's own thread, never in a parent that is about to fork. On SIGHUP (CherryPy's
"graceful") it reloads settings and the model repository; on SIGTERM it drains: /readyz turns 503,
the HTTP server stops accepting and finishes what it holds, and only then does the runtime stop.
"""

from __future__ import annotations

import time
from typing import Callable

import structlog
from cherrypy.process import plugins

from service.config import Settings
from service.engine import Engine

SWEEP_EVERY_S = 300
log = structlog.get_logger("pinpoint.plugin")


class EnginePlugin(plugins.SimplePlugin):
    def __init__(self, bus, engine: Engine, reread_settings: Callable[[], Settings] | None = None):
        super().__init__(bus)
        self.engine = engine
        self.reread_settings = reread_settings
        self.sweeper = plugins.Monitor(bus, engine.store.sweep, frequency=SWEEP_EVERY_S, name="store-sweep")

    def subscribe(self):
        super().subscribe()
        self.bus.subscribe("stop", self.drain, priority=10)

    def start(self):
        self.bus.log("Starting the Pinpoint engine (models load on the runtime thread)")
        self.engine.draining = False
        self.engine.start()
        self.sweeper.subscribe()

    start.priority = 70

    def drain(self):
        """Before the HTTP server stops (priority 25): say not-ready, and optionally keep serving a
        moment so load balancers stop sending new work before the listening socket closes."""
        self.engine.draining = True
        delay = self.engine.settings.drain_delay_s
        log.info("draining", delay_s=delay, timeout_s=self.engine.settings.drain_timeout_s)
        if delay > 0:
            time.sleep(delay)

    def stop(self):
        self.bus.log("Stopping the Pinpoint engine")
        self.engine.stop()

    stop.priority = 40  # after the HTTP server has finished its in-flight requests (priority 25)

    def graceful(self):
        """SIGHUP: re-read the settings and the model repository; requests keep flowing meanwhile."""
        if self.reread_settings is None:
            return
        try:
            settings = self.reread_settings()
            self.engine.reload(settings)
        except Exception as error:  # a broken config or model keeps the running one in service
            log.error("reload_failed", error=str(error))
