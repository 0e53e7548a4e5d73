"""The one JSON reader of every route that takes JSON: bounded, so no document a client writes can make it
raise anything but `Refused` (the route turns that into its 400 or 413).

Bounds (docs/security.md):
- size: the caller's `max_bytes` (a 413, not a 400, when passed);
- depth: MAX_DEPTH nested arrays or objects, checked on the text before the parser recurses;
- numbers: at most MAX_NUMBER_CHARS characters each (no digit-limit ValueError, no OverflowError
  turning a 400-digit integer into a float later); non-finite numbers (`NaN`, `Infinity`, `1e999`)
  only where the route allows them (TensorFlow Serving's JSON does; there only integers are held to the
  length, as floats of any length parse in linear time);
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
_CHUNK = 1 << 20
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


def loads(text: str, *, nonfinite: bool = False, whole: bool = True, raw: bytes | None = None) -> tuple[Any, int]:
    """Parse `text` -> (the document, where it ended). `whole`: nothing but whitespace may follow it
    (else only the first document is read, as TensorFlow Serving's parser does). `nonfinite`: NaN,
    Infinity and numbers past a double's range are taken (as floats) instead of refused. `raw`: the
    bytes `text` was decoded from, if at hand (the checks on the text run on them, without a copy)."""
    data = raw if raw is not None else text.encode("utf-8", "surrogatepass")
    check_depth(data)

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

    if nonfinite:  # TF Serving's tensors: floats of any length parse in linear time, inf and NaN are taken
        decoder = json.JSONDecoder(parse_int=parse_int)
    else:
        decoder = json.JSONDecoder(parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    try:
        document, end = decoder.raw_decode(text)
    except RecursionError:  # cannot happen after check_depth; kept so a change there cannot turn it into a 500
        raise Refused(f"the JSON document is nested more than {MAX_DEPTH} deep") from None
    if whole and text[end:].strip(" \t\n\r"):
        raise json.JSONDecodeError("Extra data", text, end)
    if b"\\u" in data and _SURROGATE_ESCAPE.search(text):
        check_text(document)
    return document, end


def check_depth(data: bytes) -> None:
    """Refuse more than MAX_DEPTH nested arrays and objects, from the text, in C loops: a count first;
    then, only when there are enough brackets to matter, the depth at each bracket outside strings (a
    bracket is inside a string when an odd number of quotes precede it; strings with escaped quotes are
    blanked first), a chunk at a time, so a deep document is refused within its first chunk."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return
    if b'\\"' in data:
        data = _STRINGS.sub(b'""', data)
    codes = np.frombuffer(data, np.uint8)
    quotes = np.flatnonzero(codes == 0x22)
    depth = 0
    for start in range(0, len(codes), _CHUNK):
        folded = codes[start:start + _CHUNK] | 0x20  # [ and { -> {, ] and } -> }
        opens, closes = np.flatnonzero(folded == 0x7B) + start, np.flatnonzero(folded == 0x7D) + start
        if len(quotes):
            opens = opens[np.searchsorted(quotes, opens) % 2 == 0]
            closes = closes[np.searchsorted(quotes, closes) % 2 == 0]
        if len(opens):  # the depth just inside each opening bracket
            inside = depth + np.arange(1, len(opens) + 1) - np.searchsorted(closes, opens)
            if int(inside.max()) > MAX_DEPTH:
                raise Refused(f"the JSON document is nested more than {MAX_DEPTH} deep")
        depth += len(opens) - len(closes)


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
