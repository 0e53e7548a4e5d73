"""The feedback loop: what Pinpoint answered, what the user chose, and how often they agree.

    classify answer ──> Recorder ──> bounded queue ──> LogWriter thread ──┐
                        (sampling; never waits, never fails the answer)    ├──> Store (SQLite or PostgreSQL)
    POST /v1/feedback ──> validated against the log, stored at once ───────┘       │
    GET /v1/report, /report, `pinpoint report`, /metrics  <── report.py ───────────┘

`pinpoint evaluate --csv` puts a labelled set through the same tables in memory, so a labelled set and
live feedback are read with one report. docs/feedback.md explains the loop for operators.
"""

__all__ = ["Feedback"]


def __getattr__(name: str):
    # Lazily: `pinpoint report` and `evaluate --csv` use the store and the report without the HTTP side.
    if name == "Feedback":
        from service.feedback.service import Feedback

        return Feedback
    raise AttributeError(name)
