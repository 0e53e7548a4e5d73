"""The feedback database without a server: migrations, retention, the log writer's shutdown, time filters.
Each test uses its own SQLite file (or memory)."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import text

from service.classify.request import ClassifyResult, ImageInfo, Label, ModelAnswer, PointResult
from service.errors import BadRequest
from service.feedback.recorder import Pending, rows
from service.feedback.report import build, parse_time, wilson
from service.feedback.schema import LATEST, SchemaTooNew, requests
from service.feedback.store import Choice, Store, now_ms
from service.feedback.writer import LogWriter


def answer(request_id: str, top: str = "red", model: str = "color", version: int = 1) -> ClassifyResult:
    others = [label for label in ("red", "green", "blue") if label != top]
    return ClassifyResult(request_id=request_id, image=ImageInfo(64, 32, "PNG"),
                          predictions=[PointResult(3, 4, {model: [Label(top, 0.8), Label(others[0], 0.15),
                                                                  Label(others[1], 0.05)]})],
                          models={model: ModelAnswer(version, "tensorflow")}, errors={}, timings_ms={})


def pending(request_id: str, created_ms: int | None = None, **kwargs) -> Pending:
    return Pending(now_ms() if created_ms is None else created_ms, None, "upload", 5, answer(request_id, **kwargs),
                   {("color", 1): ["red", "green", "blue"]})


def test_migrations_are_versioned_and_run_once_even_when_processes_start_together(tmp_path):
    # Forty new databases, each opened by six at once (as API workers start): a race that failed about
    # one round in fifteen to thirty (SQLite refusing the switch to WAL at once) fails this test almost always.
    for round_ in range(40):
        path = str(tmp_path / f"feedback-{round_}.db")
        outcomes, failures = [], []

        def open_it(path=path, outcomes=outcomes, failures=failures):
            store = Store(path)
            try:
                outcomes.append(store.migrate())
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)
            finally:
                store.close()

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, (round_, failures)
        assert sorted(outcomes) == [(0, LATEST)] + [(LATEST, LATEST)] * 5  # one of them created the tables
    store = Store(path)
    with store.engine.begin() as db:
        assert db.execute(text("SELECT version FROM pinpoint_schema")).scalars().all() == [LATEST]
        assert db.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        db.execute(text("UPDATE pinpoint_schema SET version = :v"), {"v": LATEST + 1})
    with pytest.raises(SchemaTooNew, match="newer than this Pinpoint"):
        store.migrate()


def test_retention_deletes_old_answers_with_their_feedback_and_keeps_the_rest(tmp_path):
    store = Store(str(tmp_path / "feedback.db"))
    store.migrate()
    day = 86_400_000
    store.write_log([rows(pending("old", created_ms=now_ms() - 10 * day)), rows(pending("new"))])
    store.record([Choice("old", 0, "color", "green"), Choice("new", 0, "color", "red")], client="product",
                 batch=True)
    assert store.sweep(now_ms() - 5 * day) == 1
    with store.engine.connect() as db:
        assert db.execute(text("SELECT request_id FROM pinpoint_requests")).scalars().all() == ["new"]
        assert db.execute(text("SELECT request_id FROM pinpoint_predictions")).scalars().all() == ["new"]
        assert db.execute(text("SELECT request_id, client FROM pinpoint_feedback")).all() == [("new", "product")]


def test_the_writer_writes_what_is_queued_before_it_stops(tmp_path):
    store = Store(str(tmp_path / "feedback.db"))
    written, dropped = [], []
    writer = LogWriter(store, capacity=1000, build=rows, retention_ms=lambda: 86_400_000,
                       on_written=lambda answers, count: written.append(count),
                       on_dropped=lambda reason, count: dropped.append((reason, count)))
    writer.start()
    for number in range(600):
        assert writer.submit(pending(f"r{number}"))
    writer.stop(timeout=30)
    assert sum(written) == 600 and not dropped
    assert store.count(requests) == 600


def test_a_full_queue_refuses_at_once_and_counts(tmp_path):
    store = Store(str(tmp_path / "feedback.db"))
    dropped = []
    writer = LogWriter(store, capacity=3, build=rows, retention_ms=lambda: 86_400_000,
                       on_dropped=lambda reason, count: dropped.append((reason, count)))
    # Not started: nothing drains the queue.
    assert [writer.submit(pending(f"r{n}")) for n in range(5)] == [True, True, True, False, False]
    assert dropped == [("queue_full", 1), ("queue_full", 1)]


def test_times_and_intervals():
    now = 1_800_000_000_000
    assert parse_time("24h", "since", now) == now - 86_400_000
    assert parse_time("7d", "since", now) == now - 7 * 86_400_000
    assert parse_time("2026-11-01", "since") == 1_793_491_200_000
    assert parse_time("2026-11-01T12:00Z", "until") == 1_793_491_200_000 + 12 * 3_600_000
    assert parse_time("2026-11-01T13:00+01:00", "until") == 1_793_491_200_000 + 12 * 3_600_000
    with pytest.raises(BadRequest, match="since must be"):
        parse_time("yesterday", "since")
    assert wilson(0, 0) is None
    low, high = wilson(10, 10)
    assert 0.69 < low < 0.73 and high == pytest.approx(1.0)


def test_the_report_of_an_empty_database_and_of_a_labelled_one():
    store = Store(":memory:")
    store.migrate()
    empty = build(store)
    assert empty["totals"] == {"logged": 0, "feedback": 0} and empty["versions"] == []
    store.write_log([rows(pending("a", top="red")), rows(pending("b", top="blue")), rows(pending("c", top="red"))])
    store.record([Choice("a", 0, "color", "red"), Choice("b", 0, "color", "red"), Choice("c", 0, "color", None)],
                 client=None, batch=True)
    (color,) = build(store)["versions"]
    assert (color["logged"], color["feedback"], color["top1"]["hits"], color["top5"]["hits"]) == (3, 3, 1, 2)
    assert color["none"] == {"count": 1, "share": 0.3333}
    assert color["confusions"] == [{"predicted": "blue", "chosen": "red", "count": 1}]
    red = next(row for row in color["labels"] if row["label"] == "red")
    assert (red["chosen"], red["predicted"], red["correct"], red["precision"], red["recall"]) == (2, 2, 1, 0.5, 0.5)
    assert json.loads(json.dumps(color)) == color  # JSON-ready as it is


def test_the_database_setting_takes_a_file_or_a_postgresql_url_and_never_shows_a_password(tmp_path):
    from service.config import ConfigError, load_settings

    def database(value):
        return load_settings(environ={"PINPOINT_FEEDBACK_DB": value}).feedback_db

    assert database(str(tmp_path / "f.db")) == str(tmp_path / "f.db")
    assert database("postgresql://pinpoint:pw@db:5432/pinpoint") == "postgresql://pinpoint:pw@db:5432/pinpoint"
    for wrong, why in (("mysql://db/x", "a SQLite file's path or a postgresql:// URL"),
                       ("postgresql://pinpoint:hunter2@db:port/x", "not a usable PostgreSQL URL"),
                       ("postgresql:///x", "needs a host")):
        with pytest.raises(ConfigError, match=why) as refused:
            database(wrong)
        assert "hunter2" not in str(refused.value)


def test_the_prints_models_answers_and_feedback_move_from_theme_to_pattern(tmp_path):
    """A database written before the topic model took the name `theme` (schema 1): the prints model's
    logged answers, their feedback and its label sets become `pattern`'s; a user's own model that is
    also called theme, with other labels, stays; reports then never mix prints with topics."""
    from service.feedback import schema

    store = Store(str(tmp_path / "feedback.db"))
    with store.engine.begin() as db:  # a database as version 1 left it
        schema.schema.create(db)
        schema._version_1(db)
        db.execute(schema.schema.insert().values(version=1))
    prints = schema.PRINT_LABELS

    def logged(request_id, version, labels):
        answer = {"theme": [Label(labels[0], 0.9), Label(labels[1], 0.1)]}
        result = ClassifyResult(request_id=request_id, image=ImageInfo(64, 32, "PNG"),
                                predictions=[PointResult(3, 4, answer)],
                                models={"theme": ModelAnswer(version, "tensorflow")}, errors={}, timings_ms={})
        return rows(Pending(now_ms(), None, "upload", 5, result, {("theme", version): list(labels)}))

    store.write_log([logged("prints-1", 1, prints), logged("prints-2", 1, prints),
                     logged("own-model", 7, ["cats", "dogs"]), rows(pending("colour"))])
    store.record([Choice("prints-1", 0, "theme", "stripes"), Choice("own-model", 0, "theme", "dogs"),
                  Choice("colour", 0, "color", "red")], client="product", batch=True)
    assert store.migrate() == (1, LATEST)
    with store.engine.connect() as db:
        models = db.execute(text("SELECT request_id, model, version FROM pinpoint_predictions "
                                 "ORDER BY request_id")).all()
        assert models == [("colour", "color", 1), ("own-model", "theme", 7), ("prints-1", "pattern", 1),
                          ("prints-2", "pattern", 1)]
        feedback = db.execute(text("SELECT request_id, model, label, client FROM pinpoint_feedback "
                                   "ORDER BY request_id")).all()
        assert feedback == [("colour", "color", "red", "product"), ("own-model", "theme", "dogs", "product"),
                            ("prints-1", "pattern", "stripes", "product")]
        label_sets = db.execute(text("SELECT model, version FROM pinpoint_label_sets ORDER BY model")).all()
        assert ("pattern", 1) in label_sets and ("theme", 7) in label_sets and ("theme", 1) not in label_sets
    assert store.migrate() == (LATEST, LATEST)  # once only


def test_an_idle_writer_stops_at_once_when_told(tmp_path):
    """SIGTERM's drain waits for the writer: an idle one must not sit out its queue poll first."""
    import time

    writer = LogWriter(Store(str(tmp_path / "feedback.db")), capacity=10, build=rows, retention_ms=lambda: 10**12)
    writer.start()
    assert writer.ready.wait(10)
    time.sleep(0.05)  # the writer is now waiting on its empty queue
    started = time.monotonic()
    writer.stop(timeout=5)
    assert time.monotonic() - started < 0.25
