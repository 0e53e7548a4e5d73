"""GET /openapi.json: an OpenAPI 3.0 document of the HTTP API, generated at request time from what the
code declares, never kept by hand:

- the paths and methods: the mounted CherryPy tree itself (every exposed handler, and the methods its
  `allowed_methods` declaration takes at that path, as the methods tool enforces them), and for the
  handlers that dispatch below themselves, their `routes` declaration (service/http/api/v2.py's ROUTES, which
  its dispatch reads; service/protocols/tfserving/routes.py's ROUTES for TF Serving's routes);
- each operation's summary: the handler's docstring, or its route declaration's;
- the error shape and every machine code with its status: service/http/api/error_responses.py's STATUS.

Request and answer fields are in docs/api.md; this document does not describe them yet.
"""

from __future__ import annotations

import inspect
import json
import re

import cherrypy

import service
from service.http.api.error_responses import STATUS

METHODS = ("GET", "POST", "DELETE")
_DOTTED = re.compile(r"_(json|png|html)$")


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


def _operation(summary: str, method: str, template: str) -> dict:
    operation = {"summary": summary or f"{method} {template}",
                 "responses": {"200": {"description": "the answer (docs/api.md)"},
                               "default": {"$ref": "#/components/responses/Error"}}}
    names = [part[1:-1].split(":")[0] for part in template.replace(":", "/:").split("/")
             if part.startswith("{") and part.endswith("}")]
    if names:
        operation["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                                   for name in names]
    if method == "POST":
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"type": "object"}}}}
    return operation


def _add(paths: dict, method: str, template: str, summary: str) -> None:
    paths.setdefault(template, {})[method.lower()] = _operation(summary, method, template)


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
                    _add(paths, method, template, summary)
                continue
            summary = _summary(value, getattr(value, "__self__", None))
            for method in _methods(value):
                _add(paths, method, path or "/", summary)
            declared = getattr(value, "allowed_methods", None)
            if name in ("index", "default") and callable(declared) and _takes_segments(value):
                for method in _methods(value, "{id}"):
                    _add(paths, method, f"{path}/{{id}}", summary)
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
                 "description": "Classify the region around a point of an image. Fields and answers: docs/api.md. "
                                "Errors: " + "; ".join(f"{status}: {', '.join(codes)}"
                                                       for status, codes in sorted(by_status.items()))},
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"}, "code": {"type": "string", "enum": sorted(STATUS)}}}},
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
