"""Read what a POST carries: a multipart form, a raw image body, or a JSON document."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import cherrypy
import multipart

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.protocols import jsonread

RAW_TYPES = ("application/octet-stream",)


def media_type() -> str:
    return cherrypy.serving.request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def is_raw_image(kind: str) -> bool:
    return kind.startswith("image/") or kind in RAW_TYPES


def read_json(max_bytes: int | None = None) -> dict[str, Any]:
    """The body as a JSON object, through the one bounded reader (service/protocols/jsonread.py). `max_bytes`:
    a limit below max_body_bytes for a route whose documents are small (reading stops there)."""
    body = cherrypy.serving.request.body
    raw = body.read() if max_bytes is None else body.read(max_bytes + 1)
    return parse_json(raw, max_bytes)


def parse_json(raw, max_bytes: int | None = None) -> dict[str, Any]:
    try:
        text = jsonread.decode(raw, max_bytes)
        document, _ = jsonread.loads(text.lstrip(" \t\n\r"), raw=raw if isinstance(raw, bytes) else None)
    except jsonread.Refused as error:
        if error.too_large:
            raise PayloadTooLarge(error.message) from None
        raise BadRequest(f"the body is not JSON this server takes: {error.message}") from None
    except ValueError:
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
    if isinstance(part, str):  # sent as a plain field (curl -F image=<file): text-safe bytes only
        return part.encode("utf-8")
    return part


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


# What each route accepts, as its 415 says.
IMAGE_TYPES = ("multipart/form-data", "the image itself (image/* or application/octet-stream)")
CLASSIFY_TYPES = ("multipart/form-data", "application/json", IMAGE_TYPES[1])


def unsupported(kind: str, accepted: tuple[str, ...]) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Content-Type {kind or '(none)'} is not accepted here: send {', '.join(accepted[:-1])} or {accepted[-1]}")


READ_CHUNK = 256 * 1024
MAX_PARTS = 16  # an image and six fields fit with room to spare; a flood of parts is refused


def parse_multipart(entity) -> None:
    """A CherryPy body processor: stream multipart/form-data through the `multipart` package's push
    parser (it finds boundaries with bytes.find, not line by line as CherryPy's own parser does).
    Fields land in the request params: text fields as str, file fields as bytes."""
    boundary = entity.content_type.params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise cherrypy.HTTPError(400, "the multipart body has no usable boundary")
    values: dict[str, list] = {}
    files: set[str] = set()
    try:
        with multipart.PushMultipartParser(boundary, content_length=entity.length if entity.length else -1,
                                           max_segment_count=MAX_PARTS) as parser:
            current = None
            while not parser.closed:
                chunk = entity.fp.read(READ_CHUNK)  # CherryPy's reader stops at max_body_bytes with a 413
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        current = [event.name, bytearray()]
                        values.setdefault(event.name, []).append(current[1])
                        if event.filename is not None:
                            files.add(event.name)
                    elif event and current is not None:
                        current[1] += event
                if not chunk:
                    break
    except multipart.MultipartError as error:
        raise cherrypy.HTTPError(400, f"the multipart body is malformed: {str(error)[:100]}") from None
    for name, parts in values.items():
        try:
            decoded = [bytes(p) if name in files else bytes(p).decode("utf-8") for p in parts]
        except UnicodeDecodeError:
            raise cherrypy.HTTPError(400, f"form field {name!r} is not UTF-8 text") from None
        entity.params[name] = decoded[0] if len(decoded) == 1 else decoded


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
        "multipart/form-data": parse_multipart,
        "multipart": _refusing_malformed(_cpreqbody.process_multipart),
    }
