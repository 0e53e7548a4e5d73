"""Classify fields from a form, a query string or a JSON body -> the engine's keyword arguments.

Form and query values arrive as strings, so numbers there are read from text. JSON has types, and the
contract (docs/api.md) says numbers: in a JSON body, `"x": "12"` is refused, as `"points": "[[1, 2]]"`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from service.errors import BadRequest
from service.protocols import jsonread

FIELDS = ("x", "y", "points", "units", "models", "top_k")
MAX_NUMBER_CHARS = 100  # as the JSON reader's (service/protocols/jsonread.py): no double needs more


def classify_args(fields: Mapping[str, Any], typed: bool = False) -> dict[str, Any]:
    """`typed`: the fields come from a JSON document, so numbers must be JSON numbers, not strings."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; fields are {', '.join(FIELDS)} and one image source")
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
        if not isinstance(fields["units"], str):
            raise BadRequest("units must be 'px' or 'pct'")
        args["units"] = fields["units"].strip().lower()
    if "models" in fields:
        args["models"] = _models(fields["models"])
    if "top_k" in fields:
        args["top_k"] = _integer("top_k", fields["top_k"], typed)
    return args


def _number(name: str, value: Any, typed: bool = False) -> float:
    if isinstance(value, str) and typed:
        raise BadRequest(f"{name} must be a JSON number, not the string {value[:20]!r}")
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise BadRequest(f"{name} must be a number of at most {MAX_NUMBER_CHARS} characters")
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
        if len(value) > MAX_NUMBER_CHARS or not value.strip().isascii():
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
