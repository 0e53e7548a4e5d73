"""Core results -> the wire documents of docs/api.md. The one place the classify answer is built;
used by the HTTP handlers and by `pinpoint predict`. CLASSIFY_ANSWER, its schema, is derived from the
typed result (service/classify/request.py) where the document writes the result's fields as they are."""

from __future__ import annotations

from service.classify.request import ClassifyResult, Label
from service.http.api.schema import NUMBER, array, map_of, obj, of_dataclass

# Every field as the result types it, but the points: {"point": {x, y}, "results": ...} (PointResult's x, y
# and results, nested as the contract has them).
CLASSIFY_ANSWER = of_dataclass(ClassifyResult)
CLASSIFY_ANSWER["properties"]["predictions"] = array(obj(point=obj(x=NUMBER, y=NUMBER),
                                                         results=map_of(array(of_dataclass(Label)))))


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


