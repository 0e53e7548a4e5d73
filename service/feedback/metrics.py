"""The feedback loop in /metrics: rows logged, answers not logged (and why), the writer's queue, feedback
by outcome, and a rolling top-1 hit rate per model and version.

Counters follow service/http/metrics.py: with API workers (PROMETHEUS_MULTIPROC_DIR set) they are written to
the shared directory and summed over processes. The rolling hit rate is read from the database at
scrape time (cached a few seconds), so every worker and every replica reports the same value.
"""

from __future__ import annotations

import os
import threading
import time

import structlog
from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from service.errors import first_line

log = structlog.get_logger("pinpoint.feedback")
DROP_REASONS = ("queue_full", "write_failed", "shutdown")
CACHE_S = 5.0


def outcome(rank: int | None, label: str | None) -> str:
    if label is None:
        return "none"
    if rank == 1:
        return "top1"
    return "top5" if rank is not None and rank <= 5 else "miss"


class FeedbackMetrics:
    def __init__(self, registry, rolling):
        """`registry`: the application's; `rolling()`: {(model, version): (feedback, top1 hits)} in the window."""
        live = None if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else registry
        self.logged = Counter("pinpoint_prediction_log_rows", "Prediction log rows written (one per request, point "
                              "and model)", registry=live)
        self.dropped = Counter("pinpoint_prediction_log_dropped", "Classify answers not logged: queue_full (the "
                               "writer's queue was full), write_failed (the database refused), shutdown",
                               ["reason"], registry=live)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.queue_depth = Gauge("pinpoint_prediction_log_queue_depth", "Answers waiting for the log writer",
                                 registry=live, multiprocess_mode="livesum")
        self.feedback = Counter("pinpoint_feedback", "Feedback stored (a replaced choice counts again), by what "
                                "the user chose: top1 (the label shown first), top5 (shown 2nd to 5th), miss "
                                "(another label), none", ["model", "version", "outcome"], registry=live)
        registry.register(_RollingHitRate(rolling))


class _RollingHitRate:
    def __init__(self, rolling):
        self.rolling = rolling
        self.lock = threading.Lock()
        self.cached: tuple[float, dict] = (0.0, {})

    def collect(self):
        with self.lock:
            taken, values = self.cached
            if time.monotonic() - taken > CACHE_S:
                try:
                    values = self.rolling()
                except Exception as error:  # a scrape must never fail because the database did
                    log.warning("feedback_hit_rate_unavailable", error=first_line(error, 200))
                    values = {}
                self.cached = (time.monotonic(), values)
        rate = GaugeMetricFamily("pinpoint_feedback_top1_hit_rate", "Share of recent feedback (the rolling "
                                 "window, feedback_hit_rate_window_s) whose label was shown first",
                                 labels=["model", "version"])
        count = GaugeMetricFamily("pinpoint_feedback_recent", "Feedback given within the rolling window",
                                  labels=["model", "version"])
        for (model, version), (total, hits) in sorted(values.items()):
            count.add_metric([model, str(version)], total)
            if total:
                rate.add_metric([model, str(version)], hits / total)
        yield rate
        yield count
