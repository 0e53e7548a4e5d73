"""GET /healthz (liveness: the process serves HTTP) and GET /readyz (readiness: every model warmed)."""

from __future__ import annotations

import cherrypy

from service.engine import Engine
from service.http.api.error_responses import json_endpoint
from service.http.api.schema import BOOLEAN, INTEGER, STRING, Operation, json_answer, map_of, nullable, obj


class Health:
    def __init__(self, engine: Engine):
        self.engine = engine

    @json_endpoint(methods=("GET", "HEAD"))
    def healthz(self, **params):
        return {"status": "ok"}

    @json_endpoint(methods=("GET", "HEAD"))
    def readyz(self, **params):
        manager = self.engine.manager
        states = {}
        for name in manager.snapshot():
            serving = manager.default_version(name)
            states[name] = serving.state.value if serving else "LOADING"
        if self.engine.ready:
            versions = {name: getattr(manager.default_version(name), "version", None) for name in states}
            return {"ready": True, "models": states, "versions": versions}
        cherrypy.serving.response.status = 503
        cherrypy.serving.response.headers["Retry-After"] = "1"
        waiting = [name for name, state in states.items() if state != "AVAILABLE"] or ["runtime"]
        return {"ready": False, "models": states, "code": "model_unavailable",
                "error": f"not ready: {', '.join(waiting)}"}


# For the OpenAPI document (service/http/openapi.py): the answers above.
Health.healthz.operations = {"GET": Operation(answers=json_answer(obj(status={**STRING, "enum": ["ok"]})))}
_STATES = map_of(STRING)
Health.readyz.operations = {"GET": Operation(answers={
    **json_answer(obj(ready={**BOOLEAN, "enum": [True]}, models=_STATES, versions=map_of(nullable(INTEGER)))),
    **json_answer(obj(ready={**BOOLEAN, "enum": [False]}, models=_STATES,
                      code={**STRING, "enum": ["model_unavailable"]}, error=STRING), 503)})}
