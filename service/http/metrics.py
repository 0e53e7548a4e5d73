"""Prometheus metrics at /metrics: requests, latencies by stage, batching, queue, models, refusals.

Each application gets its own registry, so several engines in one process (tests, benchmarks) never
collide. Route labels are the API's routes, never raw paths, so a scan of random URLs cannot blow up
the number of series. With API workers (service/processes/supervisor.py) every process writes its samples to the
supervisor's PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) and any worker's /metrics
answers for all of them: its own requests, the other workers', the runner's batches, the restarts.
"""

from __future__ import annotations

import os
import time

import cherrypy
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from service.engine import Engine
from service.http.api.schema import Operation

ROUTES = ("/v1/classify", "/v1/images", "/v1/models", "/v1/feedback", "/v1/report", "/report", "/healthz",
          "/readyz", "/metrics", "/v2/models", "/v2/health", "/v2")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def route(path: str) -> str:
    for known in ROUTES:
        if path == known or path.startswith(known + "/") or (known == "/v1/models" and path.startswith(known)):
            return known
    return "/" if path in ("/", "/index.html") or path.startswith("/static/") else "other"


BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.registry = CollectorRegistry()
        # In multiprocess mode samples go to files and are read back from there for every process, so
        # they must not also be registered live here (they would be counted twice).
        registry = None if multiprocess() else self.registry
        self.requests = Counter("pinpoint_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=registry)
        self.latency = Histogram("pinpoint_request_duration_seconds", "Time to answer a request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.stages = Histogram("pinpoint_stage_duration_seconds",
                                "Time per classify stage: decode, crop, queue (wait), infer", ["stage"],
                                buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("pinpoint_in_flight_requests", "Requests being handled", registry=registry,
                               multiprocess_mode="livesum")
        self.rate_limited = Counter("pinpoint_rate_limited", "Requests refused by the rate limiter",
                                    registry=registry)
        self.rate_limit_backend_errors = Counter(
            "pinpoint_rate_limit_backend_errors", "Rate-limit checks that could not reach the shared backend",
            registry=registry)
        # Each labelled child, looked up once: prometheus_client's labels() validates and locks on every
        # call, six calls per request (3.7% of a loaded worker's GIL-holding samples, py-spy).
        self._children: dict[tuple, object] = {}
        if multiprocess():
            MultiProcessCollector(self.registry)
        else:
            runner_metrics(engine, self.registry)
        self.registry.register(_ModelCollector(engine))

    # ---- CherryPy hooks ----
    def request_started(self) -> None:
        cherrypy.serving.request.metrics_started = time.perf_counter()
        self.in_flight.inc()

    def request_ended(self) -> None:
        request, response = cherrypy.serving.request, cherrypy.serving.response
        started = getattr(request, "metrics_started", None)
        if started is None:
            return
        self.in_flight.dec()
        label = route(request.path_info)
        status = str(response.status).split()[0]
        self._child(self.requests, label, request.method, status).inc()
        self._child(self.latency, label).observe(time.perf_counter() - started)
        for stage, ms in (getattr(request, "timings", None) or {}).items():
            if stage != "total":
                self._child(self.stages, stage).observe(ms / 1000)

    def _child(self, metric, *labels: str):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            # No more entries than prometheus_client keeps children itself (it never forgets one either).
            child = self._children[key] = metric.labels(*labels)
        return child

    def install(self) -> None:
        cherrypy.tools.metrics_start = cherrypy.Tool("on_start_resource", self.request_started, priority=5)
        cherrypy.tools.metrics_end = cherrypy.Tool("on_end_request", self.request_ended)

    @cherrypy.expose
    def page(self, *args, **kwargs) -> bytes:
        if args:
            raise cherrypy.NotFound()
        cherrypy.serving.response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return generate_latest(self.registry)

    page.allowed_methods = lambda *args: None if args else ("GET", "HEAD")
    page.operations = {"GET": Operation(answers={200: {"text/plain": {
        "type": "string", "description": "Prometheus' text format"}}})}


def runner_metrics(engine: Engine, registry=None) -> None:
    """What the process holding the runtime measures: the batches it forms."""
    batch = Histogram("pinpoint_batch_crops", "Crops per inference batch", buckets=BATCH_BUCKETS, registry=registry)
    engine.runtime.on_batch = lambda crops, run_ms: batch.observe(crops)


_restarts = None


def restarts() -> Counter:
    """Processes the supervisor restarted after they died (written by the supervisor, read by workers)."""
    global _restarts
    if _restarts is None:
        _restarts = Counter("pinpoint_process_restarts", "Processes restarted after dying", ["process"],
                            registry=None)
    return _restarts


class _ModelCollector:
    """Model states and load times, read from the runtime at scrape time."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self):
        info = GaugeMetricFamily("pinpoint_model_info", "Served models (1 = this state)",
                                 labels=["model", "version", "state"])
        load = GaugeMetricFamily("pinpoint_model_load_seconds", "Time to import and warm each model",
                                 labels=["model", "version"])
        failures = CounterMetricFamily("pinpoint_model_load_failures", "Versions that failed to load or warm",
                                       labels=["model"])
        shadow = CounterMetricFamily("pinpoint_shadow_compared", "Crops a shadow version also ran, by the "
                                     "serving top-1 label and whether the shadow's top-1 agreed",
                                     labels=["model", "version", "label", "agreed"])
        manager = self.engine.manager
        for name, versions in manager.snapshot().items():
            for version in versions:
                info.add_metric([name, str(version.version), version.state.value], 1)
                load.add_metric([name, str(version.version)], version.load_ms / 1000)
                for label, (agreed, total) in version.shadow.items():
                    shadow.add_metric([name, str(version.version), label, "true"], agreed)
                    shadow.add_metric([name, str(version.version), label, "false"], total - agreed)
        for name, count in manager.load_failures.items():
            failures.add_metric([name], count)
        queue = GaugeMetricFamily("pinpoint_queue_depth", "Inference jobs waiting")
        queue.add_metric([], self.engine.runtime.queue_depth)
        yield info
        yield load
        yield failures
        yield shadow
        yield queue
