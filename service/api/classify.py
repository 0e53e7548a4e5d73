"""POST /v1/classify: one image, one or many points, every served model (or the ones asked for)."""

from __future__ import annotations

import cherrypy

from service.api import body
from service.api.errors import json_endpoint
from service.api.fields import classify_args
from service.api.render import classify_document
from service.engine import Engine
from service.errors import BadRequest, NotFound
from service.request import ClassifyRequest, ServerPath, StoredImage, Upload, model_refs


class Classify:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.recorder = None  # (request, result, client) -> None: the feedback loop's log (service/feedback)

    @json_endpoint(methods=lambda *vpath: None if vpath else ("POST",))
    def index(self, *vpath, **params):
        if vpath:
            raise NotFound("no such resource")
        kind = body.media_type()
        sources = []
        if kind == "multipart/form-data":
            sources.append(Upload(body.file_field(params)))
            fields = params
        elif kind == "application/json":
            if params:
                raise BadRequest("with a JSON body, put every field in the JSON document")
            fields = body.read_json()
            if "image_b64" in fields:
                sources.append(Upload(body.b64_image(fields)))
            if "path" in fields:
                sources.append(ServerPath(_text("path", fields.pop("path"))))
            if "image_id" in fields:
                sources.append(StoredImage(_text("image_id", fields.pop("image_id"))))
        elif body.is_raw_image(kind):
            sources.append(Upload(body.read_raw()))
            fields = params
        else:
            raise body.unsupported(kind, body.CLASSIFY_TYPES)
        if len(sources) != 1:
            raise BadRequest("give exactly one image source: an image, a path or an image_id"
                             + (f" (got {len(sources)})" if sources else ""))
        request = cherrypy.serving.request
        args = classify_args(fields, typed=kind == "application/json")
        asked = ClassifyRequest(
            source=sources[0], points=tuple(args["points"]), units=args.get("units", "px"),
            models=model_refs(args.get("models")), top_k=args.get("top_k", 5), request_id=request.request_id,
            deadline_ms=self._deadline_ms(request.headers.get("X-Deadline-Ms")))
        result = self.engine.classify(asked)
        if self.recorder is not None:
            self.recorder(asked, result, getattr(request, "api_key_name", None))
        request.timings = result.timings_ms
        request.models = {name: answer.version for name, answer in result.models.items()}
        return classify_document(result)

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


def _text(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value
