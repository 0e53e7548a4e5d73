"""Read what a POST carries: a multipart form, a raw image body, or a JSON document."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import cherrypy

from service.errors import BadRequest, UnsupportedMediaType

RAW_TYPES = ("application/octet-stream",)


def media_type() -> str:
    return cherrypy.serving.request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def is_raw_image(kind: str) -> bool:
    return kind.startswith("image/") or kind in RAW_TYPES


def read_json() -> dict[str, Any]:
    raw = cherrypy.serving.request.body.read()
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object")
    return document


def read_raw() -> bytes:
    return cherrypy.serving.request.body.read()


def file_field(params: dict[str, Any], name: str = "image") -> bytes:
    """The bytes of the multipart file field `name` (removed from params)."""
    if name not in params:
        raise BadRequest(f"the multipart form needs a file field named {name!r}")
    part = params.pop(name)
    if isinstance(part, list):
        raise BadRequest(f"send one {name!r} field, not several")
    if isinstance(part, str):  # sent as a plain field (curl -F image=<file); text-safe bytes only
        return part.encode("utf-8", "surrogateescape")
    return part.file.read() if part.file is not None else part.fullvalue()


def b64_image(document: dict[str, Any]) -> bytes:
    value = document.pop("image_b64")
    if not isinstance(value, str):
        raise BadRequest("image_b64 must be a base64 string")
    if value.startswith("data:") and "," in value:  # a data: URL from a browser
        value = value.split(",", 1)[1]
    # Accept the URL-safe alphabet and missing padding, as some clients send; nothing else.
    value = value.strip().translate(str.maketrans("-_", "+/"))
    value += "=" * (-len(value) % 4)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image_b64 is not valid base64") from None


def unsupported(kind: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Content-Type {kind or '(none)'} is not accepted: send multipart/form-data, application/json, "
        "or the image itself (image/* or application/octet-stream)")


def _refusing_malformed(processor):
    """CherryPy's form parsers raise ValueError on malformed bodies (a bad boundary, a header without
    a colon); that is the client's mistake, so it is a 400, not a 500."""

    def process(entity):
        try:
            processor(entity)
        except cherrypy.HTTPError:
            raise
        except (ValueError, TypeError, UnicodeError, IndexError, KeyError) as error:
            raise cherrypy.HTTPError(400, f"the form body is malformed: {str(error)[:100]}") from None

    return process


def form_processors() -> dict:
    from cherrypy import _cpreqbody

    return {
        "application/x-www-form-urlencoded": _refusing_malformed(_cpreqbody.process_urlencoded),
        "multipart/form-data": _refusing_malformed(_cpreqbody.process_multipart_form_data),
        "multipart": _refusing_malformed(_cpreqbody.process_multipart),
    }
