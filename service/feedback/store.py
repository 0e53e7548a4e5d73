"""The feedback database: SQLite (a file, in WAL mode, shared safely by the processes of one host) or
PostgreSQL (several replicas), through SQLAlchemy Core. Writes of the prediction log come in batches
from the log writer; feedback is validated against the log and stored in one transaction per call.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import structlog
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from service.errors import BadRequest, NotFound
from service.feedback import schema
from service.feedback.schema import feedback, label_sets, predictions, requests

log = structlog.get_logger("pinpoint.feedback")
NONE = "none"  # the label a user gives when no label of the model fits
SWEEP_CHUNK = 5_000  # requests deleted per transaction, so a retention sweep never holds the lock long


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True)
class Choice:
    """One feedback item: what the user chose for one model's answer at one point of one request."""

    request_id: str
    point: int
    model: str
    label: str | None  # None: none of the model's labels fits


@dataclasses.dataclass(frozen=True)
class Recorded:
    choice: Choice
    version: int
    rank: int | None  # where the chosen label was in the answer shown (1 = top), None if not shown
    created: bool  # False: it replaced an earlier choice for the same request, point and model


@dataclasses.dataclass
class LoggedAnswer:
    """The rows one classify answer adds to the log (built by the writer, off the request path)."""

    request: dict
    predictions: list[dict]
    label_sets: list[dict]


class Store:
    def __init__(self, database: str):
        """`database`: a SQLite file's path, a postgresql:// URL, or ":memory:" (one connection, for
        `pinpoint evaluate --csv`)."""
        self.engine = _engine(database)
        self.dialect = self.engine.dialect.name

    def describe(self) -> str:
        """Where the data is, without a password, for logs and messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> tuple[int, int]:
        with self.engine.begin() as connection:
            return schema.migrate(connection)

    def close(self) -> None:
        self.engine.dispose()

    # ---- the prediction log ----
    def write_log(self, answers: list[LoggedAnswer]) -> int:
        """Insert the answers in one transaction; returns the prediction rows written. A request id seen
        before (clients may send X-Request-ID, and retry with it) keeps its first answer."""
        # Each version once, in one order in every process: writers of two replicas upserting the same new
        # versions in opposite orders deadlock (a request's models come out of a set, whose order follows
        # each process's hash seed; seen in CI as a 503 for feedback while the write was retried).
        by_version = {(row["model"], row["version"]): row for answer in answers for row in answer.label_sets}
        sets = [by_version[key] for key in sorted(by_version)]
        request_rows = [answer.request for answer in answers]
        prediction_rows = [row for answer in answers for row in answer.predictions]
        with self.engine.begin() as connection:
            if sets:
                upsert = self._insert(label_sets)
                connection.execute(upsert.on_conflict_do_update(
                    index_elements=[label_sets.c.model, label_sets.c.version],
                    set_={"labels": upsert.excluded.labels}), sets)
            if request_rows:
                connection.execute(self._insert(requests).on_conflict_do_nothing(), request_rows)
            if prediction_rows:
                connection.execute(self._insert(predictions).on_conflict_do_nothing(), prediction_rows)
        return len(prediction_rows)

    def missing(self, request_ids: set[str]) -> set[str]:
        """Which of these request ids the log does not hold (yet)."""
        with self.engine.connect().execution_options(pinpoint_read=True) as connection:
            found = connection.execute(select(requests.c.request_id)
                                       .where(requests.c.request_id.in_(sorted(request_ids)))).scalars().all()
        return set(request_ids) - set(found)

    def sweep(self, cutoff_ms: int) -> int:
        """Delete what was logged before `cutoff_ms`, with its feedback; returns the requests deleted."""
        deleted = 0
        while True:
            with self.engine.begin() as connection:
                old = select(requests.c.request_id).where(requests.c.created_ms < cutoff_ms).limit(SWEEP_CHUNK)
                count = connection.execute(delete(requests).where(requests.c.request_id.in_(old))).rowcount
            deleted += count
            if count < SWEEP_CHUNK:
                return deleted

    # ---- feedback ----
    def record(self, choices: list[Choice], client: str | None, batch: bool = False) -> list[Recorded]:
        """Check every choice against the log, then store them all, or none (one transaction).

        NotFound: a request id the log does not hold, or whose answer another client (API key) was given:
        an answer belongs to the key that asked for it, and another key cannot tell it from an unknown id
        (answers logged while auth was off belong to no key, and take anyone's feedback);
        BadRequest: a point or model the request had no answer for, a label the version that answered does
        not have. In a batch the message names the item."""
        stamp = now_ms()
        done = []
        with self.engine.begin() as connection:
            for index, choice in enumerate(choices):
                where = f"items[{index}]: " if batch else ""
                answer, rank = self._check(connection, choice, client, where)
                upsert = self._insert(feedback).values(
                    request_id=choice.request_id, point=choice.point, model=choice.model, label=choice.label,
                    rank=rank, client=client, created_ms=stamp, updated_ms=stamp, revision=1)
                upsert = upsert.on_conflict_do_update(
                    index_elements=[feedback.c.request_id, feedback.c.point, feedback.c.model],
                    set_={"label": upsert.excluded.label, "rank": upsert.excluded.rank,
                          "client": upsert.excluded.client, "updated_ms": upsert.excluded.updated_ms,
                          "revision": feedback.c.revision + 1})
                revision = connection.execute(upsert.returning(feedback.c.revision)).scalar_one()
                done.append(Recorded(choice, answer.version, rank, created=revision == 1))
        return done

    def _check(self, connection, choice: Choice, client: str | None, where: str):
        asked = connection.execute(select(requests.c.points, requests.c.client)
                                   .where(requests.c.request_id == choice.request_id)).first()
        if asked is None or asked.client not in (None, client):  # logged without a key (auth off): anyone's
            raise NotFound(f"{where}no logged answer has request_id {choice.request_id!r} (unknown, not "
                           "sampled for the log, or past its retention)")
        answers = connection.execute(
            select(predictions.c.model, predictions.c.version, predictions.c.labels)
            .where(predictions.c.request_id == choice.request_id, predictions.c.point == choice.point)).all()
        if not answers:
            points = asked.points
            raise BadRequest(f"{where}point {choice.point} is out of range: request {choice.request_id} asked "
                             f"about {points} point{'s' if points != 1 else ''} (0 to {points - 1})")
        answer = next((row for row in answers if row.model == choice.model), None)
        if answer is None:
            answered = ", ".join(sorted(row.model for row in answers))
            raise BadRequest(f"{where}model {choice.model!r} did not answer request {choice.request_id} at "
                             f"point {choice.point}; these did: {answered}")
        if choice.label is None:
            return answer, None
        known = connection.execute(select(label_sets.c.labels).where(
            label_sets.c.model == choice.model, label_sets.c.version == answer.version)).scalar()
        if known is not None and choice.label not in json.loads(known):
            raise BadRequest(f"{where}{choice.model} v{answer.version} has no label {choice.label!r} (give one "
                             f"of its labels, or \"{NONE}\" when none fits)")
        shown = json.loads(answer.labels)
        return answer, shown.index(choice.label) + 1 if choice.label in shown else None

    def _insert(self, table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def count(self, table) -> int:
        with self.engine.connect().execution_options(pinpoint_read=True) as connection:
            return connection.execute(select(func.count()).select_from(table)).scalar_one()


def _engine(database: str) -> Engine:
    if database == ":memory:":
        engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        _sqlite_transactions(engine, wal=False)
        return engine
    if "://" in database:
        url = make_url(database.replace("postgres://", "postgresql://", 1))
        if url.drivername in ("postgresql", "postgresql+psycopg2"):
            url = url.set(drivername="postgresql+psycopg")  # psycopg 3, installed with Pinpoint
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # opening it fails then, and the writer says why in the log and keeps trying
    engine = create_engine(URL.create("sqlite", database=str(path)), pool_size=5, max_overflow=15)
    _sqlite_transactions(engine, wal=True)
    return engine


def _sqlite_transactions(engine: Engine, wal: bool) -> None:
    """SQLite as a server's database: WAL (readers never wait for the writer, several processes share the
    file), a busy timeout instead of immediate "database is locked", foreign keys on (retention cascades),
    and writing transactions that take the write lock when they begin (BEGIN IMMEDIATE), so a transaction
    that read first never fails at its first write because another process wrote meanwhile. Python's
    sqlite3 would otherwise begin transactions its own way (SQLAlchemy's documented recipe)."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")  # first: switching to WAL waits for other connections too
        if wal:
            _switch_to_wal(cursor)
            # In WAL: a process crash loses no commit, a power cut the last few.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection):
        reading = connection.get_execution_options().get("pinpoint_read")
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def _switch_to_wal(cursor, patience_s: float = 10.0) -> None:
    """WAL is a property of the file, set by whichever process opens a new database first. When several
    open it at the same moment (the API workers starting together), SQLite may refuse the switch at once
    with "database is locked" instead of waiting out the busy timeout (seen in 11 to 22 of 300 rounds of six
    threads opening a new file), so the switch is tried again until the file is in WAL or the patience
    (the busy timeout's) runs out."""
    import sqlite3

    deadline = time.monotonic() + patience_s
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
