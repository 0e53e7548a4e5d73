"""The report: per model and version, how often what Pinpoint answered held what the user chose.

Everything is counted by the database (GROUP BY over the log joined with the feedback), so a report over
millions of rows moves a few hundred numbers. Definitions (docs/feedback.md says them for operators):

- logged: answers in the log (one per request, point and model); feedback: those a user answered.
- top-1 hit: the user chose the label shown first; top-5 hit: the chosen label was among the first 5 shown.
  Hit rates are over every feedback, "none" included (nothing shown fitted: a miss for the model), with a
  95% Wilson score interval, which stays inside [0, 1] and honest for small counts.
- per label L, over feedback: chosen (the user chose L), predicted (L was shown first), correct (both),
  precision = correct / predicted, recall = correct / chosen (the top-1 hit rate when the truth is L),
  top5 = how often L was in the first five when the user chose it.
- confusions: (shown first, chosen) pairs that differ, most frequent first; "none" is counted apart.
- the time filters and the plot's buckets use when the answer was given.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from sqlalchemy import and_, case, func, select

from service.errors import BadRequest
from service.feedback.schema import feedback, predictions
from service.feedback.store import Store, now_ms

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
BUCKETS = {"hour": HOUR_MS, "day": DAY_MS}
CONFUSIONS = 10
Z95 = 1.959964


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n <= 0:
        return None
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(hits: int, n: int) -> dict:
    interval = wilson(hits, n)
    return {"hits": hits, "rate": round(hits / n, 4) if n else None,
            "low": round(interval[0], 4) if interval else None, "high": round(interval[1], 4) if interval else None}


_RELATIVE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)$")
MAX_AGE_MS = 36_500 * DAY_MS  # a century: "all of it" for any real log
_UNIT_MS = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS, "w": 7 * DAY_MS}


def parse_time(text: str, name: str, now: int | None = None) -> int:
    """`7d`, `24h`, `30m` (that long ago), or an ISO 8601 date or time (UTC unless it says otherwise)
    -> milliseconds since the epoch."""
    text = text.strip()
    relative = _RELATIVE.match(text.lower())
    if relative:
        if len(relative.group(1)) > 20 or float(relative.group(1)) * _UNIT_MS[relative.group(2)] > MAX_AGE_MS:
            raise BadRequest(f"{name}: an age is at most {MAX_AGE_MS // DAY_MS:,} days; got {text[:40]!r}")
        return (now_ms() if now is None else now) - int(float(relative.group(1)) * _UNIT_MS[relative.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        ms = int(moment.timestamp() * 1000)
        iso(ms)  # what the report shows of it must exist too
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"{name} must be an ISO 8601 date or time (2026-11-01, 2026-11-01T12:00Z), years 1 to "
                         f"9999 in UTC, or an age like 24h or 7d; got {text[:40]!r}") from None
    return ms


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build(store: Store, model: str | None = None, version: int | None = None, since_ms: int | None = None,
          until_ms: int | None = None, bucket: str | None = None) -> dict:
    """The report as a JSON-ready dict (GET /v1/report's answer; `pinpoint report` prints it)."""
    p, f = predictions.c, feedback.c
    where = []
    if model is not None:
        where.append(p.model == model)
    if version is not None:
        where.append(p.version == version)
    if since_ms is not None:
        where.append(p.created_ms >= since_ms)
    if until_ms is not None:
        where.append(p.created_ms < until_ms)
    joined = predictions.join(feedback, and_(f.request_id == p.request_id, f.point == p.point, f.model == p.model))
    key = (p.model, p.version)
    top1 = func.sum(case((f.rank == 1, 1), else_=0))
    top5 = func.sum(case((f.rank <= 5, 1), else_=0))
    none = func.sum(case((f.label.is_(None), 1), else_=0))

    with store.engine.connect().execution_options(pinpoint_read=True) as db:
        logged = {(row[0], row[1]): row[2] for row in db.execute(
            select(*key, func.count()).where(*where).group_by(*key))}
        answered = {(row[0], row[1]): row[2:] for row in db.execute(
            select(*key, func.count(), top1, top5, none, func.min(p.created_ms), func.max(p.created_ms))
            .select_from(joined).where(*where).group_by(*key))}
        first = min((row[4] for row in answered.values()), default=None)
        last = max((row[5] for row in answered.values()), default=None)
        chosen = db.execute(
            select(*key, f.label, func.count(), func.sum(case((p.top1 == f.label, 1), else_=0)), top5)
            .select_from(joined).where(*where, f.label.is_not(None)).group_by(*key, f.label)).all()
        predicted = db.execute(select(*key, p.top1, func.count()).select_from(joined).where(*where)
                               .group_by(*key, p.top1)).all()
        confused = db.execute(
            select(*key, p.top1, f.label, func.count().label("n")).select_from(joined)
            .where(*where, f.label.is_not(None), p.top1 != f.label)
            .group_by(*key, p.top1, f.label).order_by(func.count().desc(), p.top1, f.label)).all()
        span = (until_ms or last or 0) - (since_ms or first or 0)
        bucket = bucket or ("hour" if span <= 3 * DAY_MS else "day")
        size = BUCKETS[bucket]
        slot = (p.created_ms // size).label("slot")
        series = db.execute(select(*key, slot, func.count(), top1, top5).select_from(joined).where(*where)
                            .group_by(*key, slot).order_by(*key, slot)).all()

    versions = []
    for model_name, number in sorted(set(logged) | set(answered)):
        count, hits1, hits5, nones, _, _ = answered.get((model_name, number), (0, 0, 0, 0, None, None))
        n_logged = logged.get((model_name, number), 0)
        labels = _labels([row[2:] for row in chosen if row[:2] == (model_name, number)],
                         {row[2]: row[3] for row in predicted if row[:2] == (model_name, number)})
        versions.append({
            "model": model_name, "version": number, "logged": n_logged, "feedback": count,
            "feedback_share": round(count / n_logged, 4) if n_logged else None,
            "top1": rate(hits1, count), "top5": rate(hits5, count),
            "none": {"count": nones, "share": round(nones / count, 4) if count else None},
            "labels": labels,
            "confusions": [{"predicted": row[2], "chosen": row[3], "count": row[4]}
                           for row in confused if row[:2] == (model_name, number)][:CONFUSIONS],
            "series": [{"start": iso(row[2] * size), "feedback": row[3], "top1": rate(row[4], row[3]),
                        "top5": rate(row[5], row[3])}
                       for row in series if row[:2] == (model_name, number)],
        })
    return {
        "filters": {"model": model, "version": version, "since": iso(since_ms), "until": iso(until_ms)},
        "generated_at": iso(now_ms()),
        "bucket": bucket,
        "totals": {"logged": sum(logged.values()), "feedback": sum(v[0] for v in answered.values())},
        "versions": versions,
    }


def _labels(chosen_rows, predicted: dict) -> list[dict]:
    """Per label: chosen, predicted (shown first), correct, precision, recall, top-5; most chosen first."""
    chosen = {label: (count, correct, top5) for label, count, correct, top5 in chosen_rows}
    rows = []
    for label in set(chosen) | set(predicted):
        count, correct, top5 = chosen.get(label, (0, 0, 0))
        shown_first = predicted.get(label, 0)
        rows.append({"label": label, "chosen": count, "predicted": shown_first, "correct": correct,
                     "precision": round(correct / shown_first, 4) if shown_first else None,
                     "recall": round(correct / count, 4) if count else None,
                     "top5": round(top5 / count, 4) if count else None, "top5_hits": top5})
    return sorted(rows, key=lambda row: (-row["chosen"], -row["predicted"], row["label"]))


def rolling_top1(store: Store, window_ms: int) -> dict[tuple[str, int], tuple[int, int]]:
    """(model, version) -> (feedback given in the last `window_ms`, top-1 hits among it), for /metrics."""
    p, f = predictions.c, feedback.c
    joined = predictions.join(feedback, and_(f.request_id == p.request_id, f.point == p.point, f.model == p.model))
    with store.engine.connect().execution_options(pinpoint_read=True) as db:
        rows = db.execute(select(p.model, p.version, func.count(), func.sum(case((f.rank == 1, 1), else_=0)))
                          .select_from(joined).where(f.updated_ms >= now_ms() - window_ms)
                          .group_by(p.model, p.version)).all()
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}
