"""Core results -> the wire documents of docs/api.md. The one place the classify answer is built;
used by the HTTP handlers and by `pinpoint predict`."""

from __future__ import annotations

from service.classify.request import ClassifyResult


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


