"""The CherryPy engine plugin: the one owner of the server's lifecycle.

It starts after CherryPy's Daemonizer (priority 65), so TensorFlow is first touched in the daemon
process, never in a parent that is about to fork. While running it polls the model repository
(the manager loads and unloads versions) and sweeps expired stored images. On SIGHUP (CherryPy's
"graceful") it re-reads the settings, hands them to every part that holds some (the engine, and the
HTTP guard through the bus channel SETTINGS), and polls the repository at once. On SIGTERM it drains:
/readyz turns 503, the HTTP server stops accepting and finishes what it holds, then the runtime stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from cherrypy.process import plugins

from service.config import Settings
from service.engine import Engine

SWEEP_EVERY_S = 300
SETTINGS = "pinpoint-settings"  # bus channel: new Settings after a reload
log = structlog.get_logger("pinpoint.plugin")


class EnginePlugin(plugins.SimplePlugin):
    def __init__(self, bus, engine: Engine, reread_settings: Callable[[], Settings] | None = None):
        super().__init__(bus)
        self.engine = engine
        self.reread_settings = reread_settings
        # Both call through the engine, so they always reach the store and manager of the current settings.
        self.sweeper = plugins.Monitor(bus, lambda: self.engine.store.sweep(), frequency=_sweep_every(engine.settings),
                                       name="store-sweep")
        self.poller = plugins.Monitor(bus, self._poll, frequency=max(engine.settings.model_poll_s, 0.1),
                                      name="model-poll")

    def subscribe(self):
        super().subscribe()
        self.bus.subscribe("stop", self.drain, priority=10)
        # Monitors subscribe to the bus themselves, before it starts: subscribing them from start()
        # (as this plugin once did) is too late for CherryPy to ever start them.
        self.sweeper.subscribe()
        if self.engine.settings.model_poll_s > 0 and not self.engine.remote:  # a runner polls for its workers
            self.poller.subscribe()

    def start(self):
        self.bus.log("Starting the Pinpoint engine (models load beside the inference thread)")
        self.engine.manager.draining = False
        self.engine.start()
        if self.engine.settings.host not in ("127.0.0.1", "localhost", "::1") and not self.engine.settings.api_keys:
            # Here, after the Daemonizer, so the warning reaches a daemon's log file too.
            log.warning("listening_beyond_loopback_without_auth", host=self.engine.settings.host,
                        hint="configure api_keys, or bind to 127.0.0.1 behind a reverse proxy; see docs/security.md")

    start.priority = 70

    def _poll(self):
        try:
            self.engine.manager.poll()
        except Exception as error:  # a poll that fails leaves what serves in service
            log.error("model_poll_failed", error=str(error))

    def drain(self):
        """Before the HTTP server stops (priority 25): say not-ready, and optionally keep serving a
        moment so load balancers stop sending new work before the listening socket closes."""
        self.engine.manager.draining = True
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
        except Exception as error:  # a broken config keeps the running one in service
            log.error("reload_failed", error=str(error))
            return
        self.engine.configure(settings)
        self.sweeper.frequency = _sweep_every(settings)  # the monitors restart after this (priority 50)
        self.poller.frequency = max(settings.model_poll_s, 0.1)
        self.bus.publish(SETTINGS, settings)
        self._poll()
        log.info("reloaded", models={name: [v.version for v in versions]
                                     for name, versions in self.engine.manager.snapshot().items()})

    graceful.priority = 40  # before the Monitors' own graceful restart, so they take the new frequencies


def _sweep_every(settings: Settings) -> float:
    """At least twice per retention period, so an expired image never outlives it by much."""
    return min(SWEEP_EVERY_S, max(0.5, settings.upload_retention_s / 2))
