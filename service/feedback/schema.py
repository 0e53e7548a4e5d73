"""The feedback database's tables (SQLAlchemy Core) and its migrations, versioned here in code.

    pinpoint_requests     one classify answer: when, which client (API key name), the image's source kind
                          and size; never the image, its bytes or its server path
    pinpoint_predictions  one (request, point, model): the version that answered and the top-k it showed
    pinpoint_label_sets   every label of each (model, version) seen, so feedback is checked against the
                          labels of the version that answered, even once that version is gone
    pinpoint_feedback     one (request, point, model): the label the user chose (NULL: none fits) and its
                          rank in what was shown (NULL: not shown)
    pinpoint_schema       the version of this schema the database holds

Version 2 renamed the prints model's rows from `theme` to `pattern` (the topic model took `theme`).

Deleting a request deletes its predictions and their feedback (ON DELETE CASCADE): retention is one
DELETE. Times are milliseconds since the epoch (UTC) in BIGINT columns, so time buckets are integer
division on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

requests = Table(
    "pinpoint_requests", metadata,
    Column("request_id", String, primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("client", String),  # the API key's name; NULL when auth is off
    Column("source", String, nullable=False),  # upload | path | image_id
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("points", Integer, nullable=False),
    Column("top_k", Integer, nullable=False),
    Index("pinpoint_requests_created", "created_ms"),
)

predictions = Table(
    "pinpoint_predictions", metadata,
    Column("request_id", String, primary_key=True),
    Column("point", Integer, primary_key=True),  # index in the request's points, from 0
    Column("model", String, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),  # the request's, here too so reports need no join
    Column("x", Float, nullable=False),  # pixels of the displayed image
    Column("y", Float, nullable=False),
    Column("labels", Text, nullable=False),  # JSON list: the top k shown, best first
    Column("scores", Text, nullable=False),  # JSON list, in the same order
    Column("top1", String, nullable=False),
    ForeignKeyConstraint(["request_id"], ["pinpoint_requests.request_id"], ondelete="CASCADE"),
    Index("pinpoint_predictions_model", "model", "version", "created_ms"),
)

label_sets = Table(
    "pinpoint_label_sets", metadata,
    Column("model", String, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("labels", Text, nullable=False),  # JSON list, in the model's output order
)

feedback = Table(
    "pinpoint_feedback", metadata,
    Column("request_id", String, primary_key=True),
    Column("point", Integer, primary_key=True),
    Column("model", String, primary_key=True),
    Column("label", String),  # NULL: "none" (no label fits)
    Column("rank", Integer),  # 1 = the top label shown; NULL when the label was not shown, or none
    Column("client", String),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),  # 1 when first given, +1 each time it is replaced
    ForeignKeyConstraint(["request_id", "point", "model"],
                         ["pinpoint_predictions.request_id", "pinpoint_predictions.point",
                          "pinpoint_predictions.model"], ondelete="CASCADE"),
    Index("pinpoint_feedback_updated", "updated_ms"),
)

schema = Table("pinpoint_schema", metadata, Column("version", Integer, nullable=False))


def _version_1(connection: Connection) -> None:
    """The schema as first released: the four tables above."""
    metadata.create_all(connection, tables=[requests, predictions, label_sets, feedback])


# The demo model that named prints and surfaces was called `theme` until the topic model took the name.
PRINT_LABELS = ["solid", "stripes", "checks", "polka dots", "floral", "geometric", "text", "natural texture"]


def _version_2(connection: Connection) -> None:
    """The prints model was renamed `theme` -> `pattern`: its logged answers and their feedback move
    with it, so no report mixes prints with topics. Only versions whose recorded labels are the
    prints' move (a model of the user's own called theme stays). Predictions are copied under the new
    name, feedback re-pointed, then the old rows deleted, because the feedback's foreign key would
    refuse an in-place rename of the row it refers to."""
    versions = [row.version for row in connection.execute(select(label_sets).where(label_sets.c.model == "theme"))
                if json.loads(row.labels) == PRINT_LABELS]
    if not versions:
        return
    old = and_(predictions.c.model == "theme", predictions.c.version.in_(versions))
    columns = [c for c in predictions.columns if c.name != "model"]
    connection.execute(insert(predictions).from_select(
        [c.name for c in columns] + ["model"], select(*columns, text("'pattern'")).where(old)))
    moved = select(predictions.c.request_id).where(
        predictions.c.request_id == feedback.c.request_id, predictions.c.point == feedback.c.point,
        predictions.c.model == "pattern").exists()
    connection.execute(update(feedback).where(feedback.c.model == "theme", moved).values(model="pattern"))
    connection.execute(predictions.delete().where(old))
    connection.execute(update(label_sets).where(label_sets.c.model == "theme", label_sets.c.version.in_(versions))
                       .values(model="pattern"))


# Append only. A change to a table above adds a function here with its own DDL (ALTER TABLE ...), so a
# database at any earlier version is brought up to date step by step, each step in the same transaction
# as the version it records.
MIGRATIONS = [_version_1, _version_2]
LATEST = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    pass


def migrate(connection: Connection) -> tuple[int, int]:
    """Bring the database to LATEST inside the caller's transaction; returns (was, now). Concurrent
    processes starting together take turns: PostgreSQL through an advisory lock, SQLite through the
    write lock its BEGIN IMMEDIATE holds."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7215903714)"))  # any constant of our own
    schema.create(connection, checkfirst=True)
    found = connection.execute(schema.select()).scalars().all()
    current = max(found) if found else 0
    if current > LATEST:
        raise SchemaTooNew(f"the feedback database is at schema version {current}, newer than this Pinpoint "
                           f"knows ({LATEST}): run the newer Pinpoint, or point feedback_db elsewhere")
    for number in range(current + 1, LATEST + 1):
        MIGRATIONS[number - 1](connection)
    if current != LATEST:
        connection.execute(schema.delete())
        connection.execute(schema.insert().values(version=LATEST))
    return current, LATEST
