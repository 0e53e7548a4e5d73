"""POST /v1/classify: one image, one or many points, every served model (or the ones asked for)."""

from __future__ import annotations

import cherrypy

from service.api import body
from service.api.errors import json_endpoint, require_method
from service.api.fields import classify_args
from service.engine import Engine
from service.errors import BadRequest, NotFound


class Classify:
    def __init__(self, engine: Engine):
        self.engine = engine

    @json_endpoint
    def index(self, *vpath, **params):
        if vpath:
            raise NotFound("no such resource")
        require_method("POST")
        kind = body.media_type()
        source: dict = {}
        if kind == "multipart/form-data":
            source["image"] = body.file_field(params)
            fields = params
        elif kind == "application/json":
            if params:
                raise BadRequest("with a JSON body, put every field in the JSON document")
            fields = body.read_json()
            if "image_b64" in fields:
                source["image"] = body.b64_image(fields)
            for key in ("path", "image_id"):
                if key in fields:
                    source[key] = fields.pop(key)
        elif body.is_raw_image(kind):
            source["image"] = body.read_raw()
            fields = params
        else:
            raise body.unsupported(kind)
        request = cherrypy.serving.request
        answer = self.engine.classify(**source, **classify_args(fields), request_id=request.request_id,
                                      deadline_ms=self._deadline_ms(request.headers.get("X-Deadline-Ms")))
        request.timings = answer["timings_ms"]
        request.models = {name: model["version"] for name, model in answer["models"].items()}
        return answer

    def _deadline_ms(self, header: str | None) -> float:
        """A caller may shorten its deadline with X-Deadline-Ms, never lengthen it past the configured one."""
        configured = self.engine.settings.deadline_ms
        if header is None:
            return configured
        try:
            wanted = float(header)
        except ValueError:
            raise BadRequest("X-Deadline-Ms must be a number of milliseconds") from None
        if not wanted > 0 or wanted != wanted:
            raise BadRequest("X-Deadline-Ms must be positive")
        return min(wanted, configured)
