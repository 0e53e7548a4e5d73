"""The CherryPy engine plugin that owns the engine's lifecycle (and so the inference thread).

It starts after CherryPy's Daemonizer (priority 65), so TensorFlow is first touched in the daemon
process, on the runtime's own thread, never in a parent that is about to fork.
"""

from __future__ import annotations

from cherrypy.process import plugins

from service.engine import Engine

SWEEP_EVERY_S = 300


class EnginePlugin(plugins.SimplePlugin):
    def __init__(self, bus, engine: Engine):
        super().__init__(bus)
        self.engine = engine
        self.sweeper = plugins.Monitor(bus, engine.store.sweep, frequency=SWEEP_EVERY_S, name="store-sweep")

    def start(self):
        self.bus.log("Starting the Pinpoint engine (models load on the runtime thread)")
        self.engine.start()
        self.sweeper.subscribe()

    start.priority = 70

    def stop(self):
        self.bus.log("Stopping the Pinpoint engine")
        self.engine.stop()

    stop.priority = 40  # after the HTTP server has stopped taking requests (priority 25 for the server)
