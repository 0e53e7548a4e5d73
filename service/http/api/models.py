"""GET /v1/models: Pinpoint's own listing (every model, every version with its state, labels, policy,
shadow agreement). The TensorFlow Serving routes below it are service/http/api/tfserving.py."""

from __future__ import annotations

import cherrypy

from service.engine import Engine
from service.errors import public_text
from service.http.api import tfserving, web
from service.http.api.error_responses import json_endpoint, require_method
from service.http.api.schema import INTEGER, NUMBER, STRING, Operation, array, json_answer, map_of, nullable, obj
from service.serving.manager import State, Version


class Models:
    def __init__(self, engine: Engine):
        self.engine = engine

    @cherrypy.expose
    def default(self, *vpath, **params):
        if web.is_web_path(vpath):  # /v1/models/{name}/versions/{v}/web/...: the browser's copy
            return web.handle(self.engine, vpath)
        if vpath:  # /v1/models/{name}...: TensorFlow Serving's routes
            return tfserving.handle(self.engine)
        return self._listing()

    index = default  # CherryPy calls index for the collection, default for paths below it
    default.routes = (("GET", "/v1/models", "every model, every version with its state, labels, policy"),
                      *tfserving.ROUTES)  # what is below it, for the OpenAPI document (service/http/openapi.py)
    # Checked before a body is read (service/http/api/error_responses.py: the methods tool), so PUT is a 405, not a 411.
    default.allowed_methods = lambda *vpath: ("GET", "HEAD", "POST") if vpath and not web.is_web_path(vpath) \
        else ("GET", "HEAD")

    @json_endpoint
    def _listing(self):
        require_method("GET", "HEAD")
        snapshot = self.engine.manager.snapshot()
        return {"models": [self._describe(name, versions) for name, versions in snapshot.items()]}

    def _describe(self, name: str, versions: list[Version]) -> dict:
        manager = self.engine.manager
        serving = manager.default_version(name)
        shown = serving or versions[0]
        spec = shown.spec
        model_policy = manager.policies.get(name)

        def public(text):  # no server path reaches a client (the log has the whole message)
            return public_text(text, self.engine.settings.models)

        return {
            "name": name,
            "version": shown.version,
            "state": shown.state.value,
            "backend": shown.backend or None,
            "backend_reason": public(shown.backend_reason),
            "labels": len(spec.labels) if spec else 0,
            "input": _input(spec),
            "error": public(shown.error),
            "policy": model_policy.describe() if model_policy else "latest 1",
            "version_labels": dict(manager.labels.get(name, {})),
            "versions": [{
                "version": v.version, "state": v.state.value, "backend": v.backend or None,
                "backend_reason": public(v.backend_reason),
                "error": public(v.error), "reason": public(v.reason), "load_ms": v.load_ms,
                "run_ms": round(v.cost_ms, 3), **({"shadow": _shadow(v)} if v.shadow else {}),
                **({"web": web.manifest_url(name, v.version)} if _for_the_browser(v) else {}),
            } for v in versions],
        }


# _describe's document, for the OpenAPI document (service/http/openapi.py).
_TEXT = nullable(STRING)
_STATE = {**STRING, "enum": [state.value for state in State]}
_AGREEMENT = obj(compared=INTEGER, top1_agreement=nullable(NUMBER))
LISTING = obj(models=array(obj(
    name=STRING, version=INTEGER, state=_STATE, backend=_TEXT, backend_reason=_TEXT, labels=INTEGER,
    input=nullable(obj(kind=STRING, height=nullable(INTEGER), width=nullable(INTEGER), channels=nullable(INTEGER))),
    error=_TEXT, policy=STRING, version_labels=map_of(INTEGER),
    versions=array(obj(("version", "state", "backend", "backend_reason", "error", "reason", "load_ms", "run_ms"),
                       version=INTEGER, state=_STATE, backend=_TEXT, backend_reason=_TEXT, error=_TEXT, reason=_TEXT,
                       load_ms=NUMBER, run_ms=NUMBER, web=STRING,
                       shadow=obj(**_AGREEMENT["properties"], by_label=map_of(_AGREEMENT)))))))
Models.default.operations = {("GET", "/v1/models"): Operation(answers=json_answer(LISTING)),
                             **tfserving.OPERATIONS}


def _input(spec) -> dict | None:
    """What the version takes: its crop's size, or for named tensors only, the kind alone (no crop)."""
    if spec is None:
        return None
    if spec.tensors_only:
        return {"kind": spec.input.kind, "height": None, "width": None, "channels": None}
    return {"kind": spec.input.kind, "height": spec.input.height, "width": spec.input.width,
            "channels": spec.input.channels}


def _for_the_browser(version: Version) -> bool:
    """Whether the page may ask for a web copy: a serving version whose input is not encoded JPEG bytes
    (one tf2onnx cannot convert is refused when asked, with the reason)."""
    spec = version.spec
    return version.state is State.AVAILABLE and spec is not None and spec.input.kind not in ("encoded", "tensors")


def _shadow(version: Version) -> dict:
    agreed = sum(counts[0] for counts in version.shadow.values())
    total = sum(counts[1] for counts in version.shadow.values())
    return {"compared": total, "top1_agreement": round(agreed / total, 4) if total else None,
            "by_label": {label: {"compared": n, "top1_agreement": round(a / n, 4)}
                         for label, (a, n) in sorted(version.shadow.items())}}


Models._listing.exposed = False  # reached through default only: a model may be named "_listing"
