"""From a classify answer (the typed ClassifyResult, never the wire JSON) to the prediction log's rows.

On the request path the recorder only decides whether this answer is sampled, notes what the rows
need that only the request knows (time, client, source kind, top_k, the labels of a version not yet
logged), and queues it; the rows are built in the writer's thread.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable

from service.classify.request import ClassifyRequest, ClassifyResult, ServerPath, StoredImage
from service.feedback.store import LoggedAnswer, now_ms

SOURCE_KINDS = {ServerPath: "path", StoredImage: "image_id"}  # anything else was uploaded with the request


@dataclasses.dataclass(frozen=True)
class Pending:
    created_ms: int
    client: str | None
    source: str
    top_k: int
    result: ClassifyResult
    label_sets: dict[tuple[str, int], list[str]]  # versions whose labels the log may not hold yet


class Recorder:
    def __init__(self, sample_rate: Callable[[], float], labels_of: Callable[[str, int], list[str] | None],
                 submit: Callable[[Pending], bool]):
        self.sample_rate = sample_rate  # read per answer: a reload's rate applies at once
        self.labels_of = labels_of  # (model, version) -> its labels, from the manager
        self.submit = submit
        self.logged_versions: set[tuple[str, int]] = set()  # label sets this process has written

    def record(self, request: ClassifyRequest, result: ClassifyResult, client: str | None) -> bool:
        """Queue the answer for the log if it is sampled; True if queued. Never raises into the answer's way
        (the caller guards it too) and never waits."""
        rate = self.sample_rate()
        if rate <= 0 or (rate < 1 and random.random() >= rate) or not result.predictions:
            return False
        versions = {(name, answer.version) for name, answer in result.models.items()}
        new = {}
        for model, version in versions - self.logged_versions:
            labels = self.labels_of(model, version)
            if labels is not None:
                new[(model, version)] = list(labels)
        return self.submit(Pending(now_ms(), client, SOURCE_KINDS.get(type(request.source), "upload"),
                                   request.top_k, result, new))

    def written(self, answer: LoggedAnswer) -> None:
        for row in answer.label_sets:
            self.logged_versions.add((row["model"], row["version"]))


def rows(pending: Pending) -> LoggedAnswer:
    """The writer's half: a request row, one row per point and model, and label sets not yet logged."""
    result = pending.result
    request_row = {"request_id": result.request_id, "created_ms": pending.created_ms, "client": pending.client,
                   "source": pending.source, "width": result.image.width, "height": result.image.height,
                   "points": len(result.predictions), "top_k": pending.top_k}
    prediction_rows = []
    for index, point in enumerate(result.predictions):
        for model, labels in point.results.items():
            if not labels:
                continue
            prediction_rows.append({
                "request_id": result.request_id, "point": index, "model": model,
                "version": result.models[model].version, "created_ms": pending.created_ms,
                "x": float(point.x), "y": float(point.y),
                "labels": json.dumps([label.label for label in labels]),
                "scores": json.dumps([round(float(label.score), 6) for label in labels]),
                "top1": labels[0].label})
    sets = [{"model": model, "version": version, "labels": json.dumps(labels)}
            for (model, version), labels in pending.label_sets.items()]
    return LoggedAnswer(request_row, prediction_rows, sets)
