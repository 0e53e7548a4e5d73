"""GET /v1/report (JSON), GET /v1/report/plot.png (the hit-rate picture) and GET /report (the page).

    /v1/report?model=color&version=2&since=7d&until=2026-11-30&bucket=day

Filters are optional: model, version (with a model), since and until (an ISO 8601 date or time, or an age
like 24h or 7d; on when the answer was given), bucket (hour or day, for the series; chosen from the
span when not given). The plot takes the same filters, and width (pixels, 320 to 2000).
"""

from __future__ import annotations

import re
from pathlib import Path

import cherrypy

from service.errors import BadRequest, NotFound, PinpointError
from service.feedback.report import BUCKETS, parse_time
from service.feedback.service import Feedback
from service.http.api.error_responses import Refusal, json_endpoint
from service.http.api.schema import INTEGER, NUMBER, STRING, Operation, array, binary, json_answer, nullable, obj

_VERSION = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() takes "²", which int() refuses
_WHEN = {**STRING, "description": "an ISO 8601 date or time, or an age like 24h or 7d; empty: no bound"}
# The query's filters: the names `filters` takes, and their schemas for the OpenAPI document. An empty value
# is as none given (`?bucket=`, what a form's empty choice sends), so each schema takes "" too.
FILTER_SCHEMAS = {
    "model": {**STRING, "description": "one model; empty: every model"},
    "version": {**STRING, "pattern": f"^(?:{_VERSION.pattern})?$", "description": "one version (with a model)"},
    "since": _WHEN,
    "until": _WHEN,
    "bucket": {**STRING, "enum": [*BUCKETS, ""], "description": "the series' step; empty or absent: from the span"},
}
FILTERS = tuple(FILTER_SCHEMAS)
WIDTH = (320, 2000)  # the plot's width in pixels, at least and at most
PAGE = Path(__file__).resolve().parents[3] / "static" / "report.html"


class ReportApi:
    def __init__(self, feedback: Feedback):
        self.feedback = feedback

    @json_endpoint(methods=lambda *vpath: ("GET", "HEAD") if not vpath else None)
    def index(self, *vpath, **params):
        if vpath:
            raise NotFound("no such resource")
        return self.feedback.report(**filters(params))

    @cherrypy.expose
    def plot_png(self, *vpath, **params):
        """The hit rate over time per version, as a PNG (matplotlib, drawn here)."""
        if vpath:
            raise Refusal(NotFound("no such resource"))
        try:
            width = _width(params.pop("width", None))
            report = self.feedback.report(**filters(params))
        except PinpointError as error:
            raise Refusal(error) from None
        from service.feedback.plot import hit_rate_png

        cherrypy.serving.response.headers["Content-Type"] = "image/png"
        cherrypy.serving.response.headers["Cache-Control"] = "no-store"
        return hit_rate_png(report, width_px=width)

    plot_png.allowed_methods = lambda *vpath: ("GET", "HEAD") if not vpath else None


def filters(params: dict) -> dict:
    """The query string's filters, checked: anything else is a mistake worth saying."""
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown parameter; the report takes {', '.join(FILTERS)}")
    for name, value in params.items():
        if not isinstance(value, str):
            raise BadRequest(f"give {name} once")
    chosen: dict = {}
    if params.get("model"):
        chosen["model"] = params["model"]
    if params.get("version"):
        if not _VERSION.fullmatch(params["version"]):
            raise BadRequest(f"version must be a version number (1 to 9 digits), got {params['version'][:30]!r}")
        chosen["version"] = int(params["version"])
    for name in ("since", "until"):
        if params.get(name):
            chosen[f"{name}_ms"] = parse_time(params[name], name)
    if params.get("bucket"):
        if params["bucket"] not in BUCKETS:
            raise BadRequest(f"bucket must be {' or '.join(BUCKETS)}, got {params['bucket']!r}")
        chosen["bucket"] = params["bucket"]
    return chosen


def _width(value) -> int:
    if value is None:
        return 960
    if not isinstance(value, str) or not _VERSION.fullmatch(value) or not WIDTH[0] <= int(value) <= WIDTH[1]:
        raise BadRequest(f"width must be a number of pixels from {WIDTH[0]} to {WIDTH[1]}")
    return int(value)


# The answer of service/feedback/report.py's build, for the OpenAPI document; tests/test_openapi.py checks
# real answers against it.
_SHARE = nullable(NUMBER)
_RATE = obj(hits=INTEGER, rate=_SHARE, low=_SHARE, high=_SHARE)  # report.rate: hits, their share, its 95% interval
_LABEL = obj(label=STRING, chosen=INTEGER, predicted=INTEGER, correct=INTEGER, precision=_SHARE, recall=_SHARE,
             top5=_SHARE, top5_hits=INTEGER)
REPORT = obj(
    filters=obj(model=nullable(STRING), version=nullable(INTEGER), since=nullable(STRING), until=nullable(STRING)),
    generated_at=STRING, bucket={**STRING, "enum": list(BUCKETS)}, totals=obj(logged=INTEGER, feedback=INTEGER),
    versions=array(obj(
        model=STRING, version=INTEGER, logged=INTEGER, feedback=INTEGER, feedback_share=_SHARE, top1=_RATE,
        top5=_RATE, none=obj(count=INTEGER, share=_SHARE), labels=array(_LABEL),
        confusions=array(obj(predicted=STRING, chosen=STRING, count=INTEGER)),
        series=array(obj(start=STRING, feedback=INTEGER, top1=_RATE, top5=_RATE)))))
_QUERY = tuple({"name": name, "in": "query", "required": False, "schema": schema}
               for name, schema in FILTER_SCHEMAS.items())
_ERRORS = ("bad_request", "not_found", "storage_unavailable")
ReportApi.index.operations = {"GET": Operation(answers=json_answer(REPORT), parameters=_QUERY, errors=_ERRORS)}
ReportApi.plot_png.operations = {"GET": Operation(
    answers={200: {"image/png": binary("the hit rate over time per version")}}, errors=_ERRORS,
    parameters=(*_QUERY, {"name": "width", "in": "query", "required": False, "schema": {
        **INTEGER, "minimum": WIDTH[0], "maximum": WIDTH[1], "default": 960}}))}


@cherrypy.expose
def report_page(*args, **kwargs):
    """The report page: static HTML whose script reads /v1/report (so API keys and limits apply to it)."""
    if args:
        raise cherrypy.NotFound()
    return cherrypy.lib.static.serve_file(str(PAGE), content_type="text/html")


report_page.allowed_methods = lambda *args: None if args else ("GET", "HEAD")
report_page.operations = {"GET": Operation(answers={200: {"text/html": {"type": "string"}}})}
