"""Core results -> the wire documents of docs/api.md. The one place the classify answer is built;
used by the HTTP handlers and by `pinpoint predict`."""

from __future__ import annotations

import re
from pathlib import Path

from service.classify.request import ClassifyResult

# An absolute path with at least one directory: /srv/models/x/1/model.onnx, /tmp/cache/ab12.onnx
_ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:[\w.@+=,-]+/)+[\w.@+=,-]*")


def classify_document(result: ClassifyResult) -> dict:
    return {
        "request_id": result.request_id,
        "image": {"width": result.image.width, "height": result.image.height, "format": result.image.format},
        "predictions": [
            {"point": {"x": _number(point.x), "y": _number(point.y)},
             "results": {model: [{"label": label.label, "score": label.score} for label in labels]
                         for model, labels in point.results.items()}}
            for point in result.predictions],
        "models": {name: {"version": answer.version, "backend": answer.backend}
                   for name, answer in result.models.items()},
        "errors": result.errors,
        "timings_ms": result.timings_ms,
    }


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)


def public_text(text: str | None, models: Path | str | None) -> str | None:
    """A server-side message (a version's load error, a reason) as clients may read it: paths inside the
    model repository relative to it (misnamed/1/model.onnx), any other absolute path cut to its file name.
    The server log keeps the whole message."""
    if not text:
        return text or None
    if models:
        for root in {str(models), str(Path(models).resolve())}:
            text = text.replace(root.rstrip("/") + "/", "")
    return _ABSOLUTE.sub(lambda match: "…/" + Path(match.group(0)).name, text)
