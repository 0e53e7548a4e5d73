"""Classify fields from a form, a query string or a JSON body -> the engine's keyword arguments.

Form and query values arrive as strings, JSON values typed; both end up as the same checked values.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

from service.errors import BadRequest

FIELDS = ("x", "y", "points", "units", "models", "top_k")


def classify_args(fields: Mapping[str, Any]) -> dict[str, Any]:
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
        args["points"] = _points(fields["points"])
    elif has_xy:
        if "x" not in fields or "y" not in fields:
            raise BadRequest("give both x and y")
        args["points"] = [(_number("x", fields["x"]), _number("y", fields["y"]))]
    else:
        raise BadRequest("give a point: x and y, or points")
    if "units" in fields:
        if not isinstance(fields["units"], str):
            raise BadRequest("units must be 'px' or 'pct'")
        args["units"] = fields["units"].strip().lower()
    if "models" in fields:
        args["models"] = _models(fields["models"])
    if "top_k" in fields:
        args["top_k"] = _integer("top_k", fields["top_k"])
    return args


def _number(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise BadRequest(f"{name} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a finite number")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise BadRequest(f"{name} must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer")
    return value


def _points(value: Any) -> list[tuple[float, float]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadRequest("points must be a JSON array of [x, y] pairs") from None
    if not isinstance(value, list) or not value:
        raise BadRequest("points must be a non-empty JSON array of [x, y] pairs")
    points = []
    for index, point in enumerate(value):
        if isinstance(point, dict) and set(point) == {"x", "y"}:
            point = [point["x"], point["y"]]
        if not isinstance(point, list) or len(point) != 2:
            raise BadRequest(f"points[{index}] must be an [x, y] pair")
        points.append((_number(f"points[{index}][0]", point[0]), _number(f"points[{index}][1]", point[1])))
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
