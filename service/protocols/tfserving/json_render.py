"""Tensors written as TF Serving writes them (tensorflow_serving/util/json_tensor.cc MakeJsonFromTensors,
WriteDecimal): a :predict answer in row or columnar form, floats with TF Serving's exact text, and
`dumps`, which writes a document with that text. No HTTP, no TensorFlow.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from service.protocols.tfserving.error_codes import invalid
from service.protocols.tfserving.signatures import dtype_name

BYTES_SUFFIX = "_bytes"  # outputs named so are written as {"b64": ...} (json_tensor.cc)

class JsonFloat(float):
    """A float that remembers TF Serving's text for it. json.dumps writes the same value (shortest
    repr); `dumps` writes the text itself."""

    __slots__ = ("text",)

    def __new__(cls, text: str, value: float | None = None):
        if value is None:
            value = float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(text, text))
        return _json_float(value, text)


def _json_float(value: float, text: str, _new=float.__new__) -> JsonFloat:
    number = _new(JsonFloat, value)
    number.text = text
    return number


def format_float(value: float, dtype: Any = np.float32) -> str:
    """WriteDecimal: "%g" (absl::StrCat's six digits) when it reads back as the same float32 (or
    float64), else max_digits10 ("%.9g" / "%.17g"); ".0" added to whole numbers without an exponent;
    NaN, Infinity, -Infinity as those tokens."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "-Infinity" if number < 0 else "Infinity"
    text = "%g" % number
    if np.dtype(dtype) == np.float32:
        if np.float32(float(text)) != np.float32(number):
            text = "%.9g" % number
    elif float(text) != number:
        text = "%.17g" % number
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def floats(array: np.ndarray) -> list[JsonFloat]:
    """format_float for a whole array, the parsing and comparing done by numpy."""
    flat = array.ravel()
    wide = flat.astype(np.float64).tolist()
    texts = ["%g" % x for x in wide]
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.array(texts, dtype=np.float64)
        retry = np.flatnonzero((values.astype(flat.dtype) != flat) & np.isfinite(flat)).tolist()
        values = values.tolist()
    if retry:
        long_format = "%.9g" if flat.dtype == np.float32 else "%.17g"
        longer = [long_format % wide[i] for i in retry]
        for i, text, value in zip(retry, longer, np.array(longer, dtype=np.float64).tolist()):
            texts[i], values[i] = text, value
    result = []
    append = result.append
    for x, text, value in zip(wide, texts, values):
        if x - x != 0:  # NaN or an infinity
            text = "NaN" if x != x else "Infinity" if x > 0 else "-Infinity"
        elif "." not in text and "e" not in text:
            text += ".0"
        append(_json_float(value, text))
    return result


def _strings(array: np.ndarray, as_b64: bool) -> list:
    result = []
    for item in array.ravel().tolist():
        data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if not as_b64:
            try:
                result.append(data.decode("utf-8"))
                continue
            except UnicodeDecodeError:  # TF would write the raw bytes: not JSON; send them as b64
                pass
        result.append({"b64": base64.b64encode(data).decode("ascii")})
    return result


def _nest(flat: list, shape: tuple[int, ...]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


_WRITABLE_INTS = {"int8", "int16", "int32", "uint8", "int64", "uint32", "uint64"}


def _to_json(name: str, value: Any) -> Any:
    """AddTensorValues for one whole tensor; IsNamedTensorBytes decides b64 for strings."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    dtype = array.dtype
    if dtype.name in ("float32", "float64"):
        flat = floats(array)
    elif dtype.name in _WRITABLE_INTS or dtype.kind == "b":
        flat = array.ravel().tolist()
    elif dtype.kind in "OSU":
        flat = _strings(array, name.endswith(BYTES_SUFFIX))
    else:
        raise invalid(f"Failed to write JSON value for tensor type: {dtype_name(dtype)}")
    return _nest(flat, array.shape)


def render_predict(outputs: Mapping[str, Any], form: str) -> dict[str, Any]:
    """MakeJsonFromTensors: {"predictions": ...} for "row", {"outputs": ...} for "columnar".

    One output: its name left out (row: a list with one entry per example; columnar: the tensor).
    Several: row gives a list of objects keyed by output name, columnar one object keyed by name.
    Floats are JsonFloat (TF Serving's printed value and text); DT_STRING outputs whose name ends in
    "_bytes" are {"b64": ...}, others UTF-8 text.
    """
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    arrays = {name: value if isinstance(value, np.ndarray) else np.asarray(value)
              for name, value in sorted(outputs.items())}
    if form == "columnar":
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            return {"outputs": _to_json(name, array)}
        return {"outputs": {name: _to_json(name, array) for name, array in arrays.items()}}
    if form != "row":
        raise invalid("Invalid request format")
    batch = -1
    for name, array in arrays.items():
        if array.ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                          f"expecting: {batch}")
        batch = array.shape[0]
    rows = {name: _to_json(name, array) for name, array in arrays.items()}
    if len(rows) == 1:
        return {"predictions": next(iter(rows.values()))}
    return {"predictions": [{name: rows[name][i] for name in rows} for i in range(batch)]}


def dumps(document: Any) -> str:
    """JSON text with TF Serving's number text (JsonFloat.text; other floats as WriteDecimal prints a
    double). NaN/Infinity are written as TF Serving writes them (not strict JSON, as in TF)."""
    parts: list[str] = []
    _write(document, parts)
    return "".join(parts)


def _write(value: Any, parts: list[str]) -> None:
    if isinstance(value, JsonFloat):
        parts.append(value.text)
    elif isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        parts.append(json.dumps(value))
    elif isinstance(value, float):
        parts.append(format_float(value, np.float64))
    elif isinstance(value, Mapping):
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                parts.append(", ")
            parts.append(json.dumps(str(key)))
            parts.append(": ")
            _write(item, parts)
        parts.append("}")
    elif isinstance(value, (list, tuple)):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(", ")
            _write(item, parts)
        parts.append("]")
    elif isinstance(value, np.generic):
        _write(value.item(), parts)
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
