"""POST /v1/images stores an image for later classification; DELETE /v1/images/{id} removes it."""

from __future__ import annotations

import cherrypy

from service.engine import Engine
from service.errors import BadRequest, NotFound
from service.http.api import body
from service.http.api.error_responses import json_endpoint
from service.http.api.schema import IMAGE_BODY, INTEGER, STRING, Operation, binary, json_answer, obj

STORED = obj(image_id=STRING, width=INTEGER, height=INTEGER, format=STRING)
DELETED = obj(image_id=STRING, deleted={"type": "boolean", "enum": [True]})


class Images:
    def __init__(self, engine: Engine):
        self.engine = engine

    @json_endpoint(methods=lambda *vpath: ("POST",) if not vpath else ("DELETE",) if len(vpath) == 1 else None)
    def default(self, *vpath, **params):
        if not vpath:
            return self._store(params)
        if len(vpath) == 1:  # another key's image is not found, as an unknown id is not
            self.engine.store.delete(vpath[0], _owner())
            return {"image_id": vpath[0], "deleted": True}
        raise NotFound("no such resource")

    index = default  # CherryPy calls index for the collection, default for paths below it

    def _store(self, params) -> dict:
        kind = body.media_type()
        if kind == "multipart/form-data":
            data = body.file_field(params)
        elif body.is_raw_image(kind):
            data = body.read_raw()
        else:
            raise body.unsupported(kind, body.IMAGE_TYPES)
        if params:
            raise BadRequest(f"unknown field(s): {', '.join(sorted(params))}")
        decoded = self.engine.validate(data)  # refuse what could never be classified, before keeping it
        image_id = self.engine.store.put(data, _owner())
        cherrypy.serving.response.status = 201
        return {"image_id": image_id, "width": decoded.width, "height": decoded.height, "format": decoded.format}


# For the OpenAPI document (service/http/openapi.py): the answers above, as `_store` and `default` write them.
Images.default.operations = {
    "POST": Operation(request={"multipart/form-data": obj(closed=True, image=binary("the image file")), **IMAGE_BODY},
                      answers=json_answer(STORED, 201),
                      errors=("bad_request", "invalid_image", "payload_too_large", "image_too_large",
                              "unsupported_media_type", "insufficient_storage")),
    "DELETE": Operation(answers=json_answer(DELETED), errors=("not_found",)),
}


def _owner() -> str | None:
    """The API key's name when keys are configured: its images are its own (docs/security.md)."""
    return getattr(cherrypy.serving.request, "api_key_name", None)
