"""Classify fields from a form, a query string or a JSON body -> the engine's keyword arguments.

Form and query values arrive as strings, so numbers there are read from text. JSON has types, and the
contract (docs/api.md) says numbers: in a JSON body, `"x": "12"` is refused, as `"points": "[[1, 2]]"`.

FIELDS is the one declaration of the fields: their names (which the reader checks), their types and bounds
as JSON Schema (the JSON body's, and the text form's where it differs), defaults and meanings. The reader
below and the OpenAPI document (`json_body`, `form_body`, `query_parameters`) both read it; the bounds are
the core's (service/classify/request.py), which ClassifyRequest checks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.classify.request import MAX_POINTS, MAX_TOP_K, UNITS
from service.errors import BadRequest
from service.http.api.schema import INTEGER, NUMBER, STRING, any_case, array, described, obj
from service.protocols import jsonread


@dataclass(frozen=True)
class Field:
    name: str
    schema: dict  # in a JSON body
    meaning: str
    default: Any = None
    text: dict | None = None  # in a form or a query string, where it is not `schema` written as text


_PAIR = array(NUMBER, minItems=2, maxItems=2)
# "PX" and " pct " are read as px and pct: the reader matches this pattern, and the schema gives it.
UNITS_SPELLING = any_case(UNITS)
FIELDS = (
    Field("x", NUMBER, "the point's x: pixels from the left, or percent of the width (units)"),
    Field("y", NUMBER, "the point's y: pixels from the top, or percent of the height (units)"),
    Field("points", array({"oneOf": [_PAIR, obj(closed=True, x=NUMBER, y=NUMBER)]}, minItems=1, maxItems=MAX_POINTS),
          f"several points, [x, y] pairs (or {{x, y}} objects), at most {MAX_POINTS}; instead of x and y",
          text=described(STRING, "a JSON array of [x, y] pairs")),
    Field("units", {**STRING, "pattern": UNITS_SPELLING},
          "px: pixels of the image; pct: percent of its sides (in any case)", default=UNITS[0]),
    Field("models", {"oneOf": [STRING, array(STRING)]}, "the models to ask (name, name@version or name@label); "
          "default: every served model", text=described(STRING, "comma-separated model names")),
    Field("top_k", {**INTEGER, "minimum": 1, "maximum": MAX_TOP_K}, "how many labels per model and point",
          default=5),
)
NAMES = tuple(f.name for f in FIELDS)
DEFAULTS = {f.name: f.default for f in FIELDS if f.default is not None}
# The image sources of a JSON body (a form or a raw body carries the image itself).
SOURCES = (
    Field("image_b64", STRING, "the image, base64 (a data: URL too)"),
    Field("path", {**STRING, "minLength": 1}, "an image under the server's image_root"),
    Field("image_id", {**STRING, "minLength": 1}, "an image stored with POST /v1/images"),
)
MAX_NUMBER_CHARS = 100  # as the JSON reader's (service/protocols/jsonread.py): no double needs more


def classify_args(fields: Mapping[str, Any], typed: bool = False) -> dict[str, Any]:
    """`typed`: the fields come from a JSON document, so numbers must be JSON numbers, not strings."""
    unknown = sorted(set(fields) - set(NAMES))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; fields are {', '.join(NAMES)} and one image source")
    for name, value in fields.items():
        if isinstance(value, list) and name != "points" and name != "models":
            raise BadRequest(f"field {name} is given more than once")
    args: dict[str, Any] = {}
    has_xy = "x" in fields or "y" in fields
    if "points" in fields:
        if has_xy:
            raise BadRequest("give x and y, or points, not both")
        args["points"] = _points(fields["points"], typed)
    elif has_xy:
        if "x" not in fields or "y" not in fields:
            raise BadRequest("give both x and y")
        args["points"] = [(_number("x", fields["x"], typed), _number("y", fields["y"], typed))]
    else:
        raise BadRequest("give a point: x and y, or points")
    if "units" in fields:
        spelled = re.fullmatch(UNITS_SPELLING, fields["units"]) if isinstance(fields["units"], str) else None
        if spelled is None:
            raise BadRequest(f"units must be {' or '.join(map(repr, UNITS))} (in any case), "
                             f"got {str(fields['units'])[:20]!r}")
        args["units"] = spelled.group(1).lower()
    if "models" in fields:
        args["models"] = _models(fields["models"])
    if "top_k" in fields:
        args["top_k"] = _integer("top_k", fields["top_k"], typed)
    return args


def _plain(text: str) -> bool:
    """Digits as a person types them: Python's float() and int() also take "1_000" and other scripts'
    digits ("١٢"), which no client means and the schema's number does not describe."""
    return text.isascii() and "_" not in text


def _number(name: str, value: Any, typed: bool = False) -> float:
    if isinstance(value, str) and typed:
        raise BadRequest(f"{name} must be a JSON number, not the string {value[:20]!r}")
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise BadRequest(f"{name} must be a number of at most {MAX_NUMBER_CHARS} characters")
        if not _plain(value):
            raise BadRequest(f"{name} must be a number")
        try:
            value = float(value.strip())
        except ValueError:
            raise BadRequest(f"{name} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a finite number")
    try:
        number = float(value)  # a JSON integer of 400 digits is no float
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise BadRequest(f"{name} must be a finite number, within a double's range")
    return number


def _integer(name: str, value: Any, typed: bool = False) -> int:
    if isinstance(value, str) and typed:
        raise BadRequest(f"{name} must be a JSON integer, not the string {value[:20]!r}")
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS or not _plain(value):
            raise BadRequest(f"{name} must be an integer")
        try:
            return int(value.strip())
        except ValueError:
            raise BadRequest(f"{name} must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    return value


def _points(value: Any, typed: bool = False) -> list[tuple[float, float]]:
    if isinstance(value, str) and typed:
        raise BadRequest("points must be a JSON array of [x, y] pairs, not a string")
    if isinstance(value, str):
        try:
            value, _ = jsonread.loads(value.strip())
        except (ValueError, jsonread.Refused):
            raise BadRequest("points must be a JSON array of [x, y] pairs") from None
    if not isinstance(value, list) or not value:
        raise BadRequest("points must be a non-empty JSON array of [x, y] pairs")
    points = []
    for index, point in enumerate(value):
        if isinstance(point, dict) and set(point) == {"x", "y"}:
            point = [point["x"], point["y"]]
        if not isinstance(point, list) or len(point) != 2:
            raise BadRequest(f"points[{index}] must be an [x, y] pair")
        points.append((_number(f"points[{index}][0]", point[0], typed),
                       _number(f"points[{index}][1]", point[1], typed)))
    return points


def _models(value: Any) -> list[str]:
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = [name.strip() for name in value]
    else:
        raise BadRequest("models must be a comma-separated list of model names")
    names = [name for name in names if name]
    if not names:
        raise BadRequest("models names no model")
    return names


def _schema(field: Field, as_text: bool) -> dict:
    schema = field.text if as_text and field.text else field.schema
    extra = {"default": field.default} if field.default is not None else {}
    return {**schema, **extra, "description": field.meaning}


_ONE_POINT = {"oneOf": [{"required": ["x", "y"], "not": {"required": ["points"]}},
                        {"required": ["points"], "not": {"anyOf": [{"required": ["x"]}, {"required": ["y"]}]}}]}


def json_body() -> dict:
    """The JSON body's schema: the fields, a point (x and y, or points) and exactly one image source."""
    return {"type": "object", "additionalProperties": False,
            "properties": {f.name: _schema(f, False) for f in FIELDS + SOURCES},
            "allOf": [_ONE_POINT, {"oneOf": [{"required": [s.name]} for s in SOURCES]}]}


def form_body() -> dict:
    """A multipart form's schema: the image as a file, the fields as text."""
    return {"type": "object", "additionalProperties": False, "required": ["image"],
            "properties": {"image": {"type": "string", "format": "binary", "description": "the image file"},
                           **{f.name: _schema(f, True) for f in FIELDS}}, **_ONE_POINT}


def query_parameters() -> tuple[dict, ...]:
    """The fields as query parameters, for a body that is the image itself."""
    return tuple({"name": f.name, "in": "query", "required": False, "schema": _schema(f, True)} for f in FIELDS)
