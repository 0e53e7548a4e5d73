"""GET /v1/models and GET /v1/models/{name}[/versions/{v}], in TensorFlow Serving's shapes."""

from __future__ import annotations

from service.api.errors import json_endpoint, require_method
from service.engine import Engine
from service.errors import NotFound


class Models:
    def __init__(self, engine: Engine):
        self.engine = engine

    @json_endpoint
    def default(self, *vpath, **params):
        require_method("GET", "HEAD")
        statuses = self.engine.runtime.models
        if not vpath:
            return {"models": [self._describe(status) for status in statuses.values()]}
        name, rest = vpath[0], vpath[1:]
        status = statuses.get(name)
        if status is None:
            raise NotFound(f"unknown model {name!r}")
        if rest and not (len(rest) == 2 and rest[0] == "versions" and rest[1] == str(status.version)):
            raise NotFound(f"model {name!r} has no such resource or version")
        return {"model_version_status": [{
            "version": str(status.version),
            "state": status.state,
            "status": {"error_code": "OK" if status.state != "END" else "UNKNOWN", "error_message": status.error},
        }]}

    index = default  # CherryPy calls index for the collection, default for paths below it

    @staticmethod
    def _describe(status) -> dict:
        spec = status.spec
        return {
            "name": status.name,
            "versions": [status.version],
            "version": status.version,
            "state": status.state,
            "labels": len(spec.labels),
            "input": {"kind": spec.input.kind, "height": spec.input.height, "width": spec.input.width,
                      "channels": spec.input.channels},
            "error": status.error or None,
        }
