"""The CherryPy application: mounts the API and the static page, wires the tools and the engine plugin."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cherrypy
import structlog
from cherrypy.process import plugins

from service.classify.request import use_replica_secret
from service.config import Settings
from service.engine import Engine
from service.feedback import Feedback
from service.http import cors, openapi, ready
from service.http import protection as protect
from service.http.api import error_responses as api_errors
from service.http.api import web
from service.http.api.body import form_processors
from service.http.api.classify import Classify
from service.http.api.client_config import Config
from service.http.api.error_responses import error_page, unhandled_error
from service.http.api.feedback import FeedbackApi
from service.http.api.feedback_report import ReportApi, report_page
from service.http.api.health import Health
from service.http.api.images import Images
from service.http.api.models import Models
from service.http.api.schema import Operation
from service.http.api.v2 import V2
from service.http.plugin import SETTINGS, EnginePlugin
from service.http.ratelimit import MemoryBuckets, RedisBuckets, SharedBuckets
from service.http.server import HTTPServer
from service.observe import configure_logging, install_tools
from service.processes import address, daemon
from service.processes import supervisor as processes

if TYPE_CHECKING:  # imported for real in mount, once a supervisor has chosen where samples are kept
    from service.http.metrics import Metrics

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
log = structlog.get_logger("pinpoint.app")


# The page and its files are cross-origin isolated, so onnxruntime-web may run threaded WebAssembly
# (SharedArrayBuffer) when the page runs the models in the browser (docs/browser.md).
ISOLATED = {"tools.response_headers.on": True, "tools.response_headers.headers": [
    ("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin")]}


class V1:
    def __init__(self, engine: Engine):
        self.classify = Classify(engine)
        self.images = Images(engine)
        self.models = Models(engine)
        self.config = Config(engine)


class Root:
    def __init__(self, engine: Engine, metrics: Metrics):
        health = Health(engine)
        self.healthz, self.readyz = health.healthz, health.readyz
        self.metrics = metrics.page
        self.v1 = V1(engine)
        self.v2 = V2(engine)  # the Open Inference Protocol's REST routes (service/http/api/v2.py)
        self.openapi_json = openapi.page  # GET /openapi.json, generated from the routes (service/http/openapi.py)


def buckets_for(settings: Settings, metrics, engine: Engine):
    """Rate-limit buckets in this process; with API workers, in a file they all map (beside the runner's
    socket, in the supervisor's private run directory: no round trip per request); or in Redis when
    replicas must share them."""
    if settings.rate_limit_backend == "memory":
        if engine.remote:
            return SharedBuckets(Path(engine.runner.address).with_name("buckets"))
        return MemoryBuckets()

    def backend_failed(error):
        metrics.rate_limit_backend_errors.inc()
        log.warning("rate_limit_backend_unreachable", error=str(error)[:200],
                    fail_open=settings.rate_limit_fail_open)

    return RedisBuckets(settings.rate_limit_backend, settings.rate_limit_fail_open, on_error=backend_failed)


def mount(engine: Engine, settings: Settings) -> cherrypy.Application:
    """Configure CherryPy for these settings and mount the application at /."""
    from service.http.metrics import Metrics  # here, after a supervisor has chosen where samples are kept

    install_tools()
    api_errors.install()
    use_replica_secret(settings.replica_secret)
    metrics = Metrics(engine)
    metrics.install()
    guard = protect.Guard(settings, buckets_for(settings, metrics, engine), on_refused=metrics.rate_limited.inc)
    protect.install(guard)
    cherrypy.engine.subscribe(SETTINGS, guard.configure)  # a reload reaches the HTTP side too
    # CherryPy pads short error bodies with spaces for Internet Explorer 5; our errors are JSON for programs.
    cherrypy._cperror._ie_friendly_error_sizes.clear()
    cherrypy.log.access_log.propagate = False  # our access line (observe.log_request) replaces it
    cherrypy.config.update({
        "server.socket_host": settings.host,
        "server.socket_port": settings.port,
        "server.thread_pool": settings.threads,
        "server.socket_timeout": settings.socket_timeout,
        "server.socket_queue_size": 512,  # the listen backlog: CherryPy's 5 drops connects in any burst
        "server.shutdown_timeout": settings.drain_timeout_s,  # in-flight requests may finish this long
        "server.max_request_body_size": 0,  # enforced below, so the refusal is the contract's JSON
        "engine.autoreload.on": False,
        "checker.on": False,
        "log.screen": False,
        "log.access_file": "",
        "log.error_file": "",
        "request.show_tracebacks": False,
        "request.show_mismatched_params": False,
    })
    config = {
        "/": {
            "tools.metrics_start.on": True,
            "tools.metrics_end.on": True,
            "tools.request_id.on": True,
            "tools.methods.on": True,  # each handler's methods, checked before its body is read
            "tools.ranges.on": True,  # a Range header that is not byte ranges is ignored (not a 500)
            "tools.access_log.on": True,
            "tools.guard.on": True,
            "tools.body_limit.on": True,
            "request.body.maxbytes": settings.max_body_bytes,
            "request.body.processors": form_processors(),
            "request.error_response": unhandled_error,
            "error_page.default": error_page,
            "tools.trailing_slash.on": False,
            **cors.install(settings),  # service/http/cors.py: off while cors_origins is empty
        },
        # TF Serving's routes and the Open Inference Protocol's read their body as JSON whatever its
        # Content-Type (TF Serving's own curl example sends curl's default form type): no form parsing.
        "/v1/models": {"request.body.processors": {}},
        "/v2": {"request.body.processors": {}},
        "/index.html": {"tools.staticfile.on": True, "tools.staticfile.filename": str(STATIC_DIR / "index.html"),
                        "tools.methods.methods": ("GET", "HEAD"), **ISOLATED},
        "/static": {"tools.staticdir.on": True, "tools.staticdir.dir": str(STATIC_DIR),
                    "tools.methods.methods": ("GET", "HEAD"), **ISOLATED},
    }
    root = Root(engine, metrics)
    root.static = web.Static()  # what staticdir does not find: the runtime's WebAssembly, from its .gz
    mount_feedback(root, Feedback(engine, metrics.registry))
    _page.allowed_methods = lambda *args: None if args else ("GET", "HEAD")  # below /: not found, any method
    root.index = _page
    app = cherrypy.tree.mount(root, "/", config)

    def take(settings: Settings) -> None:  # the streaming body limit follows a reload like the guard does
        app.config["/"]["request.body.maxbytes"] = settings.max_body_bytes

    cherrypy.engine.subscribe(SETTINGS, take)
    app.log.access_log.propagate = False
    # CherryPy still formats its Apache-style line for every request (about 0.1 ms) before the logger
    # drops it: not formatted at all (observe.log_request writes the one access line).
    app.log.access = lambda: None
    app.guard, app.metrics = guard, metrics  # gRPC (service/grpc/server.py) shares them
    return app


def mount_feedback(root: Root, feedback: Feedback) -> None:
    """The feedback loop (docs/feedback.md): classify answers logged, POST /v1/feedback, the reports."""
    feedback.subscribe(cherrypy.engine)
    root.v1.classify.recorder = feedback.record_answer
    root.v1.feedback = FeedbackApi(feedback)
    root.v1.report = ReportApi(feedback)
    root.report = report_page


@cherrypy.expose
def _page(*args, **kwargs):
    """The HTML test page: drop an image, click a point, read the labels."""
    if args:
        raise cherrypy.NotFound()
    cherrypy.serving.response.headers.update(ISOLATED["tools.response_headers.headers"])
    return cherrypy.lib.static.serve_file(str(STATIC_DIR / "index.html"), content_type="text/html")


_page.operations = {"GET": Operation(answers={200: {"text/html": {"type": "string"}}})}  # for service/http/openapi.py


def assemble(settings: Settings, bus, runner=None, reread_settings=None):
    """The server of this process, subscribed to `bus` but not started: the engine (over `runner`: the
    model runner's client in an API worker, else the models in this process), the mounted application,
    waitress beneath CherryPy, the engine's plugin. `serve` below and the tests' in-process server
    (tests/inprocess.py) both build it here. Returns (engine, app)."""
    engine = Engine(settings, runner=runner)
    app = mount(engine, settings)
    cherrypy.server.httpserver = HTTPServer(cherrypy.server, settings, bus)
    EnginePlugin(bus, engine, reread_settings).subscribe()
    return engine, app


def serve(settings: Settings, daemonize: bool = False, reread_settings=None) -> None:
    """Run until SIGTERM/SIGINT: in the foreground, or detached as a daemon with a pidfile.

    With `workers = 0` everything runs in this process; otherwise this process supervises a model
    runner and the API workers (service/processes/supervisor.py), which run this function again in their role."""
    log_format = "json" if daemonize and settings.log_format == "auto" else settings.log_format
    configure_logging(settings.log_level, log_format)
    role = processes.role()
    if role == "runner":
        return processes.run_runner(settings, reread_settings)
    if role is None:
        address.check(settings.host, settings.port, settings.pidfile)  # plainly, before TensorFlow loads
        if settings.workers > 0:
            return processes.supervise(settings, daemonize)
    bus = cherrypy.engine
    engine, app = assemble(settings, bus, processes.remote_runner(settings) if role == "worker" else None,
                           reread_settings)
    if settings.grpc_port:
        from service.grpc import server as grpcapi

        grpcapi.subscribe(bus, engine, settings, app.guard, app.metrics)
    if role == "worker":
        processes.serve_inherited_socket(cherrypy.server)
        processes.follow_supervisor(bus)
    if daemonize:
        # Fork before anything starts: the Daemonizer runs at priority 65, the engine at 70.
        plugins.Daemonizer(bus, stdout=str(settings.log_file), stderr=str(settings.log_file)).subscribe()
        daemon.keep_umask(bus, Path(settings.log_file))
        plugins.PIDFile(bus, str(settings.pidfile)).subscribe()
    if role is None:  # one process: it announces itself (a supervisor does, for its workers)
        ready.announce_when_ready(bus, settings, daemonize)
    if hasattr(bus, "signal_handler"):
        # CherryPy re-executes the whole process on SIGHUP; a reload here is the graceful one instead.
        bus.signal_handler.handlers["SIGHUP"] = bus.graceful
        bus.signal_handler.subscribe()
    log.info("serving", url=f"http://{address.display(settings.host, settings.port)}/",
             models=str(settings.models),
             image_root=str(settings.image_root) if settings.image_root else None, daemon=daemonize)
    bus.start()
    bus.block()
