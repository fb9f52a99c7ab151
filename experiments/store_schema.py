"""The store's tables (SQLAlchemy Core) and how a database gets them: created when missing,
indexes added since a database was made created on it too, and the outcome types' CHECK widened
on a store made before a type existed.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection

from experiments.records import OUTCOME_TYPES
from experiments.store_backend import UtcDateTime

metadata = MetaData()


def _outcome_type_check() -> str:
    return "type IN (" + ", ".join(f"'{kind}'" for kind in OUTCOME_TYPES) + ")"


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
        _outcome_type_check(), name="ck_outcomes_type",
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


# The review queue (issue 15). One row per image of a decision that needs a person: what the
# page shows of it, thumbnails included. Purged after the retention (experiments.review_store);
# reviews stay, so precision reports outlive the thumbnails.
review_items = Table(
    "review_items",
    metadata,
    Column("decision_id", String, nullable=False),
    Column("image_id", String, nullable=False),
    Column("listing_id", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("category", String, nullable=False),
    Column("marketplace", String, nullable=False),
    Column("variant", String, nullable=False),
    Column("action", String, nullable=False),  # the service's action on the image
    Column("rule_ids", JSON, nullable=False),  # rule ids of the violations
    Column("violations", JSON, nullable=False),
    Column("boxes", JSON, nullable=False),
    Column("selection", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("fix", JSON, nullable=True),
    Column("image_size", JSON, nullable=False),  # [width, height] of the original, px
    Column("source_url", Text, nullable=True),  # when the image was fetched by URL
    Column("thumbnail", LargeBinary, nullable=True),  # JPEG, <= 384 px
    Column("fixed_thumbnail", LargeBinary, nullable=True),
    PrimaryKeyConstraint("decision_id", "image_id", name="pk_review_items"),
    Index("ix_review_items_created", "created_at"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("decision_id", String, nullable=False),
    Column("image_id", String, nullable=False),
    Column("reviewer", String, nullable=False),
    Column("action", String, nullable=False),
    Column("rules_wrong", JSON, nullable=False),
    Column("comment", Text, nullable=False),
    Column("reviewed_at", UtcDateTime, nullable=False),
    # A reviewer acting twice on an image (a resubmitted form) replaces the first verdict.
    UniqueConstraint("decision_id", "image_id", "reviewer", name="uq_reviews_image_reviewer"),
    Index("ix_reviews_reviewed_at", "reviewed_at"),
)

# Reviewer accounts: token digests as for outcome keys (SHA-256), kept apart from those, so a
# reviewer's token never posts outcomes and an outcome key never opens the review pages.
reviewers = Table(
    "reviewers",
    metadata,
    Column("name", String, primary_key=True),
    Column("token_sha256", String, nullable=False, unique=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Values every replica must agree on, e.g. the secret that signs review sessions: a session
# made by one ingress replica is honoured by the others.
shared_settings = Table(
    "shared_settings",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
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
    _widen_outcome_types(conn)


def _widen_outcome_types(conn: Connection) -> None:
    """A store made before an outcome type existed refuses it by its CHECK: rewrite the check.

    PostgreSQL replaces the constraint in place. SQLite cannot alter a constraint, so the table
    is rebuilt under its own name, rows and indexes kept; the caller holds the write lock.
    """
    newest = OUTCOME_TYPES[-1]
    if conn.dialect.name == "postgresql":
        current = conn.execute(text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'ck_outcomes_type'")).scalar()
        if current is not None and newest not in current:
            conn.execute(text("ALTER TABLE outcomes DROP CONSTRAINT ck_outcomes_type"))
            conn.execute(text("ALTER TABLE outcomes ADD CONSTRAINT ck_outcomes_type "
                              f"CHECK ({_outcome_type_check()})"))
        return
    current = conn.execute(text(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'")).scalar()
    if current is None or newest in current:
        return
    conn.execute(text("ALTER TABLE outcomes RENAME TO outcomes_before_upgrade"))
    for index in outcomes.indexes:
        conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
    outcomes.create(conn)
    names = ", ".join(column.name for column in outcomes.columns)
    conn.execute(text(
        f"INSERT INTO outcomes ({names}) SELECT {names} FROM outcomes_before_upgrade"))
    conn.execute(text("DROP TABLE outcomes_before_upgrade"))
