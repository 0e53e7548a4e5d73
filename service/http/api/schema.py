"""The JSON Schemas of the API's documents, and how a handler declares its operation for the OpenAPI document.

A handler (or a route table) declares an `Operation`: the request it reads, the answers it gives (status ->
media type -> schema) and the machine codes of its errors. service/http/openapi.py reads these declarations; the
schemas come from the declarations the code itself reads: the tables its validators read (service/http/api/
fields.py), the typed results answers are rendered from (`of_dataclass`), or the schema declared beside the
function that renders the answer (tests/test_openapi.py checks real answers against each).

The schemas are OpenAPI 3.0's dialect of JSON Schema: `nullable` instead of a null type.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}


def obj(required: tuple[str, ...] | None = None, closed: bool = False, **properties) -> dict:
    """An object with these properties; `required`: the names always present (default: every one);
    `closed`: no other property is taken (a request's) or given."""
    schema: dict = {"type": "object", "properties": properties}
    names = list(properties) if required is None else list(required)
    if names:
        schema["required"] = names
    if closed:
        schema["additionalProperties"] = False
    return schema


def array(items: dict, **bounds) -> dict:
    return {"type": "array", "items": items, **bounds}


def map_of(values: dict) -> dict:
    """An object whose keys are names (of models, labels, ...) and whose values are `values`."""
    return {"type": "object", "additionalProperties": values}


def nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


def described(schema: dict, text: str) -> dict:
    return {**schema, "description": text}


_SCALARS = {str: STRING, int: INTEGER, float: NUMBER, bool: BOOLEAN}


def of_type(hint) -> dict:
    """A Python type hint (str, int, float, bool, list[X], tuple[X, ...], dict[str, X], X | None, a
    dataclass) -> its JSON Schema, as json.dumps writes a value of it."""
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if dataclasses.is_dataclass(hint):
        return of_dataclass(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1:
            schema = of_type(others[0])
            return nullable(schema) if len(others) < len(args) else schema
        return {"anyOf": [of_type(arg) for arg in others]}
    if origin in (list, tuple) and args:
        return array(of_type(args[0]))
    if origin is dict and args:
        return map_of(of_type(args[1]))
    raise TypeError(f"no JSON Schema for {hint!r}")


def of_dataclass(cls, *leave_out: str) -> dict:
    """Every field of the dataclass, by its type hint, as dataclasses.asdict and the renderers write it."""
    hints = typing.get_type_hints(cls)
    return obj(**{f.name: of_type(hints[f.name]) for f in dataclasses.fields(cls) if f.name not in leave_out})


JSON = "application/json"


@dataclass(frozen=True)
class Operation:
    """What one method of one route reads and answers, for the OpenAPI document.

    `request`: media type -> schema of the body (None: no body); `parameters`: OpenAPI query parameters;
    `answers`: status -> {media type: schema} of its successful (or declared non-error) answers;
    `errors`: the machine codes of its own errors (the ones every route can give are added by the document)."""

    answers: dict[int, dict[str, dict]]
    request: dict[str, dict] | None = None
    parameters: tuple[dict, ...] = ()
    errors: tuple[str, ...] = ()


def binary(what: str) -> dict:
    return {"type": "string", "format": "binary", "description": what}


# A body that is the image itself.
IMAGE_BODY = {"image/*": binary("the image"), "application/octet-stream": binary("the image")}


def json_answer(schema: dict, status: int = 200) -> dict[int, dict[str, dict]]:
    return {status: {JSON: schema}}


_BLANKS = "[ \\t\\r\\n]*"


def any_case(words) -> str:
    """A pattern (ECMA 262 and Python alike) that takes any of `words` in any case with blanks around, the
    word its group 1: a reader that matches it reads what a schema with it describes, no more, no less."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word) for word in words)
    return f"^{_BLANKS}({'|'.join(spelled)}){_BLANKS}$"
