"""GET /openapi.json: an OpenAPI 3.0 document of the HTTP API, generated at request time from what the
code declares, never kept by hand:

- the paths and methods: the mounted CherryPy tree itself (every exposed handler, and the methods its
  `allowed_methods` declaration takes at that path, as the methods tool enforces them), and for the
  handlers that dispatch below themselves, their `routes` declaration (service/http/api/v2.py's ROUTES, which
  its dispatch reads; service/protocols/tfserving/routes.py's ROUTES for TF Serving's routes);
- each operation's summary: the handler's docstring, or its route declaration's; its operationId from the
  method and path (the reference page, static/openapi.html, links to it); its security where
  service/http/protection.py guards the path (an API key, or none while the server has no keys);
- each operation's request body, query parameters, answers and error codes: the `operations` the handler
  declares (service/http/api/schema.py's Operation, keyed by method, or by (method, path template) for a
  handler with routes). Their schemas are read from the code's own declarations: the field tables the
  validators read (service/http/api/fields.py for /v1/classify, feedback.py's ITEM, feedback_report.py's
  filters), the typed results answers are rendered from (render.py's CLASSIFY_ANSWER from ClassifyResult,
  a crop from CropSpec, a feedback answer from Choice and Recorded), or the schema declared beside the code
  that writes the answer (models, health, images, report; TF Serving's bodies in
  service/protocols/tfserving/json_schema.py, the Open Inference Protocol's in service/protocols/oip_schema.py).
  tests/test_openapi.py checks real answers of every route against them;
- the error shape and every machine code with its status: service/http/api/error_responses.py's STATUS;
  per operation, the codes it declares plus the ones every route can give (an API key and the rate limit
  only where service/http/protection.py guards the path).
"""

from __future__ import annotations

import inspect
import json
import re
from http import HTTPStatus

import cherrypy

import service
from service.http.api.error_responses import STATUS
from service.http.api.schema import JSON, Operation
from service.http.protection import guarded

METHODS = ("GET", "POST", "DELETE")
_DOTTED = re.compile(r"_(json|png|html)$")
EVERY_ROUTE = ("method_not_allowed", "internal_error")  # a wrong method; a bug, logged with its request id
GUARDED = ("unauthorized", "rate_limited")  # when API keys or a rate limit are set
WITH_BODY = ("bad_request", "payload_too_large")  # a body that cannot be read, or is over max_body_bytes
_ERROR = {"$ref": "#/components/schemas/Error"}
# What the path templates' names mean (service/protocols/tfserving/routes.py and v2.py's ROUTES name them).
PATH_PARAMETERS = {"name": "the model's name (models/<name>/ in the repository)",
                   "version": "one of the model's version numbers",
                   "id": "the image_id POST /v1/images answered"}


def _summary(handler, owner) -> str:
    """The handler's docstring, else its class's, else its module's: the first line."""
    for thing in (handler, owner, inspect.getmodule(owner if owner is not None else handler)):
        doc = inspect.getdoc(thing) if thing is not None else None
        if doc:
            return doc.splitlines()[0].rstrip(".")
    return ""


def _methods(handler, *vpath) -> tuple[str, ...]:
    declared = getattr(handler, "allowed_methods", None)
    allowed = declared(*vpath) if callable(declared) else declared
    return tuple(m for m in (allowed or ()) if m in METHODS)


def _content(by_media: dict[str, dict]) -> dict:
    return {media: {"schema": schema} for media, schema in by_media.items()}


def _errors(codes: set[str]) -> dict[str, dict]:
    """status -> the error answer with the codes of that status."""
    by_status: dict[int, list[str]] = {}
    for code in sorted(codes):
        by_status.setdefault(STATUS[code], []).append(code)
    return {str(status): {"allOf": [_ERROR, {"properties": {"code": {"enum": names}}}]}
            for status, names in by_status.items()}


def operation_id(method: str, template: str) -> str:
    """`post_v1_classify`, `get_v1_models_name_versions_version`: unique as (method, path) is, and a
    fragment the reference page (static/openapi.html) links to."""
    return method.lower() + "_" + (re.sub(r"[^A-Za-z0-9]+", "_", template).strip("_") or "root")


def _operation(summary: str, method: str, template: str, declared: Operation | None) -> dict:
    operation: dict = {"operationId": operation_id(method, template), "summary": summary or f"{method} {template}"}
    if guarded(template):  # an API key only when the server has keys: none is one of the choices
        operation["security"] = [{"bearer": []}, {"apiKey": []}, {}]
    names = [part[1:-1].split(":")[0] for part in template.replace(":", "/:").split("/")
             if part.startswith("{") and part.endswith("}")]
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"},
                   **({"description": PATH_PARAMETERS[name]} if name in PATH_PARAMETERS else {})} for name in names]
    if declared is None:  # not declared: the document says only that there is an answer
        operation["responses"] = {"200": {"description": "OK"},
                                  "default": {"$ref": "#/components/responses/Error"}}
        if method == "POST":
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": {"type": "object"}}}}
    else:
        parameters += declared.parameters
        if declared.request is not None:
            operation["requestBody"] = {"required": True, "content": _content(declared.request)}
        responses = {str(status): {"description": HTTPStatus(status).phrase, "content": _content(by_media)}
                     for status, by_media in sorted(declared.answers.items())}
        codes = set(declared.errors) | set(EVERY_ROUTE) | (set(GUARDED) if guarded(template) else set()) \
            | (set(WITH_BODY) if declared.request is not None else set())
        for status, schema in _errors(codes).items():
            if status in responses:  # an answer that is not an error (not ready) shares the status
                content = responses[status]["content"]
                content[JSON] = {"schema": {"oneOf": [content[JSON]["schema"], schema]} if JSON in content else schema}
            else:
                responses[status] = {"description": HTTPStatus(int(status)).phrase,
                                     "content": {JSON: {"schema": schema}}}
        operation["responses"] = dict(sorted(responses.items()))
    if parameters:
        operation["parameters"] = parameters
    return operation


def _declared(handler, method: str, template: str) -> Operation | None:
    operations = getattr(handler, "operations", None) or {}
    return operations.get((method, template)) or operations.get(method)


def _add(paths: dict, method: str, template: str, summary: str, handler) -> None:
    paths.setdefault(template, {})[method.lower()] = _operation(summary, method, template,
                                                                _declared(handler, method, template))


def _container(value) -> bool:
    """An object of the API's tree (the application's Root and V1, the handlers of service/http/api), not
    something a handler holds (the engine, the feedback store): only those are walked."""
    module = type(value).__module__
    return (not callable(value) and not isinstance(value, type)
            and (module == "service.http.app" or module.startswith("service.http.api")))


def _takes_segments(handler) -> bool:
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)


def _walk(node, prefix: str, paths: dict, seen: set) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    names = set(vars(type(node))) | set(getattr(node, "__dict__", {}))
    for name in sorted(names):
        if name.startswith("_"):
            continue
        if isinstance(inspect.getattr_static(node, name), property):
            continue  # never run a property (one may need a request)
        value = getattr(node, name)
        # CherryPy's dispatcher maps "." in a path to "_" in the attribute's name.
        path = prefix if name in ("index", "default") else prefix + "/" + _DOTTED.sub(r".\1", name)
        if callable(value) and getattr(value, "exposed", False):
            routes = getattr(value, "routes", None)
            if routes is not None:
                for method, template, summary, *_ in routes:
                    _add(paths, method, template, summary, value)
                continue
            summary = _summary(value, getattr(value, "__self__", None))
            for method in _methods(value):
                _add(paths, method, path or "/", summary, value)
            declared = getattr(value, "allowed_methods", None)
            if name in ("index", "default") and callable(declared) and _takes_segments(value):
                for method in _methods(value, "{id}"):
                    _add(paths, method, f"{path}/{{id}}", summary, value)
        elif _container(value):
            _walk(value, path, paths, seen)


def document(root) -> dict:
    paths: dict = {}
    _walk(root, "", paths, set())
    by_status: dict[int, list[str]] = {}
    for code, status in STATUS.items():
        by_status.setdefault(status, []).append(code)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Pinpoint", "version": service.__version__,
                 "description": "Classify the region around a point of an image (docs/api.md tells more). "
                                "Errors: " + "; ".join(f"{status}: {', '.join(codes)}"
                                                       for status, codes in sorted(by_status.items()))},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "an API key as Authorization: Bearer <key>, once the server has [api_keys]"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "the same key in an X-API-Key header"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "code"], "properties": {
                "error": {"type": "string", "description": "what went wrong, for people"},
                "code": {"type": "string", "enum": sorted(STATUS), "description": "the machine code, for programs"}}}},
            "responses": {"Error": {"description": "an error: the status and its machine code", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }


@cherrypy.expose
def page(*args, **kwargs) -> bytes:
    if args:
        raise cherrypy.NotFound()
    cherrypy.serving.response.headers["Content-Type"] = "application/json"
    return json.dumps(document(cherrypy.request.app.root), indent=1).encode()


page.allowed_methods = lambda *args: None if args else ("GET", "HEAD")
page.operations = {"GET": Operation(answers={200: {JSON: {"type": "object", "description": "this document"}}})}
