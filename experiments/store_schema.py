"""The store's tables (SQLAlchemy Core) and how a database gets them: created when missing, and
indexes added since a database was made created on it too.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Connection

from experiments.records import OUTCOME_TYPES
from experiments.store_backend import UtcDateTime

metadata = MetaData()

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String, primary_key=True),
    Column("unit_id", String, nullable=False),  # the listing id: the unit of assignment
    Column("created_at", UtcDateTime, nullable=False),
    Column("experiment_id", String, nullable=True),  # null: no experiment was live
    Column("variant", String, nullable=False),
    Column("bucket", Integer, nullable=True),
    Column("policy_set_version", String, nullable=False),
    Column("policy_version", String, nullable=False),
    Column("scorer_version", String, nullable=False),
    Column("category", String, nullable=False),
    Column("marketplace", String, nullable=False),
    Column("main_image_id", String, nullable=True),
    Column("image_actions", JSON, nullable=False),  # image_id -> action
    # Derived from image_actions at write time, so reject rates need no JSON functions (which
    # SQLite and PostgreSQL spell differently).
    Column("image_count", Integer, nullable=False),
    Column("rejected_count", Integer, nullable=False),
    Column("error_count", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Index("ix_decisions_experiment_variant", "experiment_id", "variant"),
    # The canary reads one ramp step at a time (`since`): a range on created_at within the
    # experiment, instead of every decision the experiment ever made.
    Index("ix_decisions_experiment_created", "experiment_id", "created_at"),
    Index("ix_decisions_unit", "unit_id"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("event_id", String, primary_key=True),
    Column("type", String, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("unit_id", String, nullable=True),
    Column("decision_id", String, nullable=True),
    Column("value", Float, nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    CheckConstraint(
        "type IN (" + ", ".join(f"'{kind}'" for kind in OUTCOME_TYPES) + ")",
        name="ck_outcomes_type",
    ),
    CheckConstraint("unit_id IS NOT NULL OR decision_id IS NOT NULL", name="ck_outcomes_target"),
    Index("ix_outcomes_unit", "unit_id"),
    Index("ix_outcomes_decision", "decision_id"),
)

# The canary controller's history, one row per transition. The state of a ramp is rebuilt by
# replaying these in `seq` order (experiments.canary_runner).
canary_transitions = Table(
    "canary_transitions",
    metadata,
    Column("experiment_id", String, nullable=False),
    Column("seq", Integer, nullable=False),  # 1, 2, ... per experiment
    Column("kind", String, nullable=False),
    Column("from_percent", Float, nullable=False),
    Column("to_percent", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("experiment_id", "seq", name="pk_canary_transitions"),
    CheckConstraint(
        "kind IN ('advance', 'promote', 'rollback')", name="ck_canary_transitions_kind"
    ),
)


def create_missing(conn: Connection) -> None:
    """Create the tables and indexes `conn`'s database lacks. The caller serialises callers."""
    metadata.create_all(conn)
    # create_all skips a table that exists, and with it the table's indexes: an index added
    # since the database was made is created here. On PostgreSQL the build makes writers of its
    # table wait, once (CONCURRENTLY cannot run in a transaction); requests do not wait, since
    # they write through the outbox.
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
