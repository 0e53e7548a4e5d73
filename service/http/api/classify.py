"""POST /v1/classify: one image, one or many points, every served model (or the ones asked for)."""

from __future__ import annotations

import cherrypy

from service.classify.request import ClassifyRequest, ServerPath, StoredImage, Upload, model_refs, new_request_id
from service.engine import Engine
from service.errors import BadRequest, NotFound
from service.http.api import body, fields
from service.http.api.deadline import deadline_ms
from service.http.api.error_responses import json_endpoint
from service.http.api.fields import DEFAULTS, classify_args
from service.http.api.render import CLASSIFY_ANSWER, classify_document
from service.http.api.schema import IMAGE_BODY, Operation, json_answer


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
                sources.append(StoredImage(_text("image_id", fields.pop("image_id")),
                                           getattr(cherrypy.serving.request, "api_key_name", None)))
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
            source=sources[0], points=tuple(args["points"]), units=args.get("units", DEFAULTS["units"]),
            models=model_refs(args.get("models")), top_k=args.get("top_k", DEFAULTS["top_k"]),
            request_id=_answer_id(request),
            deadline_ms=deadline_ms(request.headers.get("X-Deadline-Ms"), self.engine.settings.deadline_ms))
        result = self.engine.classify(asked)
        if self.recorder is not None:
            self.recorder(asked, result, getattr(request, "api_key_name", None))
        request.timings = result.timings_ms
        request.models = {name: answer.version for name, answer in result.models.items()}
        return classify_document(result)


# For the OpenAPI document (service/http/openapi.py): the three bodies, and the fields in the query string
# when the body is the image itself.
Classify.index.operations = {"POST": Operation(
    request={"application/json": fields.json_body(), "multipart/form-data": fields.form_body(), **IMAGE_BODY},
    parameters=fields.query_parameters(), answers=json_answer(CLASSIFY_ANSWER),
    errors=("bad_request", "invalid_image", "point_out_of_bounds", "path_forbidden", "not_found",
            "payload_too_large", "image_too_large", "unsupported_media_type", "model_unavailable", "overloaded",
            "timeout", "storage_unavailable"))}


def _text(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def _answer_id(request) -> str:
    """The answer's request_id, which feedback names: always the server's own. A client's X-Request-ID is
    echoed in the header for its logs, but the answer gets a fresh id, so no client can choose (and so
    claim first) an id another client's answer will have. The access log shows both."""
    if request.headers.get("X-Request-ID") != request.request_id:
        return request.request_id  # minted by the server (service/observe.py)
    request.answer_id = new_request_id()
    return request.answer_id
