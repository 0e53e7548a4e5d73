"""POST /v1/feedback: which label the user chose for one model's answer at one point of a request.

    {"request_id": "3f2c…", "point": 0, "model": "color", "label": "silver"}      (or "label": "none")
    {"items": [{…}, {…}]}                                                        (several in one call)

201 when every choice is new, 200 when one replaced an earlier choice for the same request, point and
model (posting again is how a user changes their mind). A batch is stored whole or not at all.
"""

from __future__ import annotations

import cherrypy

from service.classify.request import MAX_POINTS
from service.errors import BadRequest, NotFound
from service.feedback.service import Feedback
from service.feedback.store import NONE, Choice, Recorded
from service.http.api import body
from service.http.api.error_responses import json_endpoint
from service.http.api.schema import INTEGER, STRING, Operation, array, described, json_answer, obj, of_dataclass

MAX_ITEMS = 1000
MAX_TEXT = 200
_TEXT = {**STRING, "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}  # blank is refused as empty
# A feedback item's fields: the names parse_choice takes, and their schemas for the OpenAPI document.
ITEM = {
    "request_id": described(_TEXT, "the request_id of the classify answer"),
    "point": described({**INTEGER, "minimum": 0, "maximum": MAX_POINTS - 1, "default": 0},
                       "the index of the point in that request"),
    "model": described(_TEXT, "the model whose answer this is about"),
    "label": described(_TEXT, f'the label the user chose, or "{NONE}" when none fits'),
}
FIELDS = tuple(ITEM)
MAX_DOCUMENT_BYTES = 1 << 20  # a full batch of 1000 items is well under 1 MB


class FeedbackApi:
    def __init__(self, feedback: Feedback):
        self.feedback = feedback

    @json_endpoint(methods=lambda *vpath: None if vpath else ("POST",))
    def index(self, *vpath, **params):
        if vpath:
            raise NotFound("no such resource")
        if not self.feedback.enabled:
            raise NotFound("feedback is off on this server (feedback = false)")
        kind = body.media_type()
        if kind != "application/json":
            raise body.unsupported(kind, ("application/json",))
        if params:
            raise BadRequest("with a JSON body, put every field in the JSON document")
        document = body.read_json(MAX_DOCUMENT_BYTES)
        batch = "items" in document
        choices = parse_items(document) if batch else [parse_choice(document, "")]
        request = cherrypy.serving.request
        recorded = self.feedback.record(choices, getattr(request, "api_key_name", None), batch=batch)
        created = all(done.created for done in recorded)
        cherrypy.serving.response.status = 201 if created else 200
        if batch:
            return {"items": [describe(done) for done in recorded]}
        return describe(recorded[0])


def parse_items(document: dict) -> list[Choice]:
    extra = sorted(set(document) - {"items"})
    if extra:
        raise BadRequest(f"a batch is {{\"items\": [...]}} alone; unexpected: {', '.join(extra)}")
    items = document["items"]
    if not isinstance(items, list) or not items:
        raise BadRequest("items must be a non-empty list of feedback objects")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"at most {MAX_ITEMS} items per call, got {len(items)}")
    return [parse_choice(item, f"items[{index}].") for index, item in enumerate(items)]


def parse_choice(item, where: str) -> Choice:
    if not isinstance(item, dict):
        raise BadRequest(f"{where.rstrip('.') or 'the body'} must be a JSON object")
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise BadRequest(f"{where}{unknown[0]}: unknown field; a feedback item has {', '.join(FIELDS)}")
    for name in ("request_id", "model", "label"):
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{where}{name} is required, a non-empty string")
        if len(value) > MAX_TEXT:
            raise BadRequest(f"{where}{name} is longer than {MAX_TEXT} characters")
    point = item.get("point", 0)
    if isinstance(point, bool) or not isinstance(point, int) or not 0 <= point < MAX_POINTS:
        shown = repr(point) if not isinstance(point, int) or abs(point) < 10**12 else "a larger number"
        raise BadRequest(f"{where}point must be the index of the point in the request (0 to {MAX_POINTS - 1}), "
                         f"got {shown[:40]}")
    label = item["label"]
    return Choice(item["request_id"], point, item["model"], None if label == NONE else label)


# describe's document: the Choice and the Recorded around it, as their types say (the label: "none" for None).
DESCRIBED = obj(**{**of_dataclass(Choice)["properties"], "label": STRING,
                   **of_dataclass(Recorded, "choice")["properties"]})
_ITEM = obj(("request_id", "model", "label"), closed=True, **ITEM)
_ANSWER = {"oneOf": [DESCRIBED, obj(items=array(DESCRIBED))]}
FeedbackApi.index.operations = {"POST": Operation(
    request={"application/json": {"oneOf": [_ITEM, obj(closed=True, items=array(_ITEM, minItems=1,
                                                                                  maxItems=MAX_ITEMS))]}},
    answers={**json_answer(_ANSWER, 201), **json_answer(_ANSWER)},  # 201: every choice new; 200: one replaced
    errors=("bad_request", "not_found", "payload_too_large", "unsupported_media_type", "overloaded",
            "storage_unavailable"))}


def describe(done: Recorded) -> dict:
    choice = done.choice
    return {"request_id": choice.request_id, "point": choice.point, "model": choice.model, "version": done.version,
            "label": NONE if choice.label is None else choice.label, "rank": done.rank, "created": done.created}
