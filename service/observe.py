"""Structured logs: structlog set-up, request ids, and one JSON line per request."""

from __future__ import annotations

import logging
import os
import re
import sys
import time

import cherrypy
import structlog

from service.classify.request import new_request_id

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
access_log = structlog.get_logger("pinpoint.access")
PROBE_HEADER = "X-Pinpoint-Probe"


def _pid(_, __, event: dict) -> dict:
    """Which process wrote the line: API workers and the model runner share one log."""
    event.setdefault("pid", os.getpid())
    return event


class EngineChatter(logging.Filter):
    """CherryPy's bus narrates every start and stop (`ENGINE Bus STARTING`, `ENGINE Serving on ...`, a
    dozen lines per process): that is debug. Its warnings and errors stay, and so does `ENGINE Bus
    EXITED`, the last line of every process, which `pinpoint start` watches for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith("cherrypy") \
                and "ENGINE " in str(record.msg)[:40] and "Bus EXITED" not in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """structlog for our events and for foreign (CherryPy, TensorFlow) stdlib records alike."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _pid,
    ]
    # Colours only for a terminal that wants them: never into a redirected file (NO_COLOR: no-color.org).
    colors = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    renderer = structlog.dev.ConsoleRenderer(colors=colors) if console else structlog.processors.JSONRenderer()
    structlog.configure(
        # filter_by_level first: an event below the level costs one check, not a rendered line.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    handler.addFilter(EngineChatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def assign_request_id() -> None:
    """Echo a well-formed client X-Request-ID, else make one; every response carries it."""
    request = cherrypy.serving.request
    given = request.headers.get("X-Request-ID", "")
    request.request_id = given if _CLIENT_ID.match(given) else new_request_id()
    request.started = time.perf_counter()
    request.timings = None
    request.models = None
    cherrypy.serving.response.headers["X-Request-ID"] = request.request_id


def log_request() -> None:
    request, response = cherrypy.serving.request, cherrypy.serving.response
    started = getattr(request, "started", None)
    status = response.status
    code = int(status.split()[0]) if isinstance(status, str) else status
    # The server's own wait for readiness (service/http/ready.py) asks /readyz every 0.2 s while models load.
    probe = request.path_info == "/readyz" and request.headers.get(PROBE_HEADER) == "ready"
    (access_log.debug if probe else access_log.info)(
        "request",
        request_id=getattr(request, "request_id", None),
        method=request.method,
        path=request.path_info,
        status=code,
        client=request.remote.ip,
        duration_ms=round((time.perf_counter() - started) * 1000, 2) if started else None,
        timings=getattr(request, "timings", None),
        models=getattr(request, "models", None),
        **({"answer_id": request.answer_id} if getattr(request, "answer_id", None) else {}),
    )


def install_tools() -> None:
    cherrypy.tools.request_id = cherrypy.Tool("on_start_resource", assign_request_id, priority=10)
    cherrypy.tools.access_log = cherrypy.Tool("on_end_request", log_request)
