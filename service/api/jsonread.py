"""The one JSON reader of every route that takes JSON: bounded, so no document a client writes can make it
raise anything but `Refused` (the route turns that into its 400 or 413).

Bounds (docs/security.md):
- size: the caller's `max_bytes` (a 413, not a 400, when passed);
- depth: MAX_DEPTH nested arrays or objects, checked on the text before the parser recurses;
- numbers: at most MAX_NUMBER_CHARS characters each (no digit-limit ValueError, no OverflowError
  turning a 400-digit integer into a float later); non-finite numbers (`NaN`, `Infinity`, `1e999`)
  only where the route allows them (TensorFlow Serving's JSON does);
- text: UTF-8, and no lone surrogate (`"\\ud800"`) in any string or key, so every string can be
  encoded, logged and stored again.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)  # JSON strings, which may hold brackets
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CHUNK = 1 << 22
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Refused(Exception):
    """The document is not one this reader takes; `too_large` when it is only its size."""

    def __init__(self, message: str, too_large: bool = False, position: int | None = None):
        super().__init__(message)
        self.message, self.too_large, self.position = message, too_large, position


def decode(raw: bytes | bytearray | memoryview | str, max_bytes: int | None = None) -> str:
    """The body as text: at most `max_bytes` bytes of UTF-8 (a leading byte-order mark is skipped)."""
    if isinstance(raw, str):
        return raw
    if max_bytes is not None and len(raw) > max_bytes:
        raise Refused(f"the JSON document is {len(raw):,} bytes; the limit is {max_bytes:,}", too_large=True)
    try:
        return bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Refused("the JSON document is not UTF-8 text", position=error.start) from None


def loads(text: str, *, nonfinite: bool = False, whole: bool = True) -> tuple[Any, int]:
    """Parse `text` -> (the document, where it ended). `whole`: nothing but whitespace may follow it
    (else only the first document is read, as TensorFlow Serving's parser does). `nonfinite`: NaN,
    Infinity and numbers past a double's range are taken (as floats) instead of refused."""
    check_depth(text)

    def number_text(literal: str) -> None:
        if len(literal) > MAX_NUMBER_CHARS:
            raise Refused(f"a number is {len(literal):,} characters long; the limit is {MAX_NUMBER_CHARS}")

    def parse_int(literal: str) -> int:
        number_text(literal)
        return int(literal)

    def parse_float(literal: str) -> float:
        number_text(literal)
        value = float(literal)
        if not nonfinite and not math.isfinite(value):
            raise Refused(f"the number {literal[:30]} is too large for a double")
        return value

    def parse_constant(name: str) -> float:
        if not nonfinite:
            raise Refused(f"{name} is not a JSON number")
        return _CONSTANTS[name]

    decoder = json.JSONDecoder(parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    try:
        document, end = decoder.raw_decode(text)
    except RecursionError:  # cannot happen after check_depth; kept so a change there cannot turn it into a 500
        raise Refused(f"the JSON document is nested more than {MAX_DEPTH} deep") from None
    if whole and text[end:].strip(" \t\n\r"):
        raise json.JSONDecodeError("Extra data", text, end)
    if _SURROGATE_ESCAPE.search(text):
        check_text(document)
    return document, end


def check_depth(text: str) -> None:
    """Refuse more than MAX_DEPTH nested arrays and objects, from the text (brackets inside strings do not
    count), in C loops: a count first, the running depth only when there are enough brackets to matter."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    data = _STRINGS.sub(b"", text.encode("utf-8", "surrogatepass"))
    codes = np.frombuffer(data, np.uint8)
    depth = 0
    for start in range(0, len(codes), _CHUNK):
        folded = codes[start:start + _CHUNK] | 0x20  # [ { -> {, ] } -> }
        steps = (folded == 0x7B).astype(np.int32) - (folded == 0x7D)
        running = np.cumsum(steps, dtype=np.int64) + depth
        if running.size and running.max() > MAX_DEPTH:
            raise Refused(f"the JSON document is nested more than {MAX_DEPTH} deep")
        depth = int(running[-1]) if running.size else depth


def check_text(document: Any) -> None:
    """Every string and key is encodable text: JSON's \\u escapes can name half a surrogate pair."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            _encodable(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _encodable(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused("a JSON string holds a lone surrogate (\\ud800 to \\udfff): it is not Unicode text") from None
