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

FILTERS = ("model", "version", "since", "until", "bucket")
_VERSION = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() takes "²", which int() refuses
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
    if not isinstance(value, str) or not _VERSION.fullmatch(value) or not 320 <= int(value) <= 2000:
        raise BadRequest("width must be a number of pixels from 320 to 2000")
    return int(value)


@cherrypy.expose
def report_page(*args, **kwargs):
    """The report page: static HTML whose script reads /v1/report (so API keys and limits apply to it)."""
    if args:
        raise cherrypy.NotFound()
    return cherrypy.lib.static.serve_file(str(PAGE), content_type="text/html")


report_page.allowed_methods = lambda *args: None if args else ("GET", "HEAD")
