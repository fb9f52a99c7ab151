"""The decision and outcome store: what each variant decided, and what customers did next.

SQLAlchemy Core over two backends that must answer alike: SQLite (the embedded default, one
file, WAL) and PostgreSQL (clusters, many ingress replicas writing at once). Writes are
idempotent by primary key, so the outbox may deliver a row more than once. Report queries return
plain frozen rows, ordered and rounded in Python, so both backends give identical answers.

The request path never writes here directly: it goes through `experiments.outbox.Outbox`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    TypeDecorator,
    and_,
    case,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from experiments.records import (
    OUTCOME_TYPES,
    REJECT_ACTION,
    DecisionRecord,
    Exposure,
    OutcomeRecord,
    UnitMetrics,
    VariantDecisionStats,
    as_utc,
)

# Summed outcome values (money) are rounded to this many decimals: SQLite and PostgreSQL add
# floats in different orders, and reports must not differ in the last bit.
VALUE_DECIMALS = 6
SQLITE_BUSY_TIMEOUT_MS = 10_000


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps naive text (fixed width, so text order is time order); PostgreSQL keeps
    `timestamptz`. Either way the caller sees the same value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = as_utc(value)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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


class DecisionStore:
    """Decisions and outcomes on SQLite (`sqlite:///var/curator.db`) or PostgreSQL
    (`postgresql+psycopg://user:password@host/db`).

    Thread-safe: every call takes its own pooled connection.
    """

    def __init__(self, url: str, *, pool_size: int = 4, max_overflow: int = 4) -> None:
        self.engine = _create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.dialect = self.engine.dialect.name

    def create_schema(self) -> None:
        """Create missing tables and indexes; safe to call from many replicas at once."""
        with self.engine.begin() as conn:
            # Replicas starting together would race between "does the table exist" and CREATE:
            # take the database's write lock first, so one creates and the others see it done.
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('curator.schema'))"))
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    def write_decisions(self, records: Sequence[DecisionRecord]) -> int:
        """Insert decisions, ignoring ids already stored; returns how many were new."""
        return self._insert_new(decisions, [_decision_row(record) for record in records])

    def write_outcomes(self, records: Sequence[OutcomeRecord]) -> int:
        """Insert outcome events, ignoring ids already stored; returns how many were new."""
        return self._insert_new(outcomes, [_outcome_row(record) for record in records])

    def _insert_new(self, table: Table, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        key = table.primary_key.columns.values()[0]
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        # RETURNING counts the rows really inserted; executemany rowcounts differ by driver.
        statement = (
            dialect_insert(table).on_conflict_do_nothing(index_elements=[key]).returning(key)
        )
        # Key order: concurrent writers of overlapping batches (an outbox retrying after a lost
        # acknowledgement) then lock rows in the same order and cannot deadlock on PostgreSQL.
        rows = sorted(rows, key=lambda row: str(row[key.name]))
        with self.engine.begin() as conn:
            return len(conn.execute(statement, rows).all())

    def exposures(self, experiment_id: str) -> list[Exposure]:
        """Every unit each variant decided for, with its first exposure; by variant, unit."""
        with self.engine.connect() as conn:
            rows = conn.execute(_first_exposures(experiment_id)).all()
        exposures = [Exposure(row.variant, row.unit_id, row.first_exposed_at) for row in rows]
        return sorted(exposures, key=lambda exposure: (exposure.variant, exposure.unit_id))

    def unit_metrics(self, experiment_id: str) -> list[UnitMetrics]:
        """Per (variant, unit): outcome counts and summed values from the first exposure on.

        An event belongs to the unit of the decision it names, else to the unit it names, so an
        event naming both counts once. Events before the unit's first exposure are left out: the
        variant cannot have caused them.
        """
        exposed = _first_exposures(experiment_id).subquery("exposed")
        target = decisions.alias("target")
        attributed = (
            select(
                outcomes.c.type,
                outcomes.c.value,
                outcomes.c.occurred_at,
                func.coalesce(target.c.unit_id, outcomes.c.unit_id).label("unit_id"),
            )
            .select_from(outcomes.outerjoin(target, target.c.decision_id == outcomes.c.decision_id))
            .subquery("attributed")
        )
        per_type = []
        for kind in OUTCOME_TYPES:
            is_kind = attributed.c.type == kind
            per_type.append(func.count(case((is_kind, 1))).label(f"n_{kind}"))
            per_type.append(func.sum(case((is_kind, attributed.c.value))).label(f"v_{kind}"))
        query = (
            select(exposed.c.variant, exposed.c.unit_id, exposed.c.first_exposed_at, *per_type)
            .select_from(
                exposed.outerjoin(
                    attributed,
                    and_(
                        attributed.c.unit_id == exposed.c.unit_id,
                        attributed.c.occurred_at >= exposed.c.first_exposed_at,
                    ),
                )
            )
            .group_by(exposed.c.variant, exposed.c.unit_id, exposed.c.first_exposed_at)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        metrics = [
            UnitMetrics(
                variant=row.variant,
                unit_id=row.unit_id,
                first_exposed_at=row.first_exposed_at,
                counts={kind: int(row._mapping[f"n_{kind}"]) for kind in OUTCOME_TYPES},
                values={kind: _rounded(row._mapping[f"v_{kind}"]) for kind in OUTCOME_TYPES},
            )
            for row in rows
        ]
        # Sorted here, not in SQL: PostgreSQL's collation may order text unlike SQLite's bytes.
        return sorted(metrics, key=lambda metric: (metric.variant, metric.unit_id))

    def decision_stats(self, experiment_id: str) -> list[VariantDecisionStats]:
        """Per variant: decisions, error rate, p99 latency, reject rate; ordered by variant."""
        in_experiment = decisions.c.experiment_id == experiment_id
        totals_query = (
            select(
                decisions.c.variant,
                func.count().label("decisions"),
                func.count(decisions.c.unit_id.distinct()).label("units"),
                func.count(case((decisions.c.error_count > 0, 1))).label("with_errors"),
                func.sum(decisions.c.image_count).label("images"),
                func.sum(decisions.c.rejected_count).label("rejected"),
            )
            .where(in_experiment)
            .group_by(decisions.c.variant)
        )
        with self.engine.connect() as conn:
            totals = conn.execute(totals_query).all()
            p99 = _p99_latency_by_variant(conn, experiment_id)
        return sorted(
            (
                VariantDecisionStats(
                    variant=row.variant,
                    decisions=int(row.decisions),
                    units=int(row.units),
                    decisions_with_errors=int(row.with_errors),
                    error_rate=_share(int(row.with_errors), int(row.decisions)),
                    p99_latency_ms=p99[row.variant],
                    images=int(row.images),
                    rejected_images=int(row.rejected),
                    reject_rate=_share(int(row.rejected), int(row.images)),
                )
                for row in totals
            ),
            key=lambda stats: stats.variant,
        )


def _decision_row(record: DecisionRecord) -> dict[str, Any]:
    actions = dict(record.image_actions)
    return {
        "decision_id": record.decision_id,
        "unit_id": record.unit_id,
        "created_at": record.created_at,
        "experiment_id": record.experiment_id,
        "variant": record.variant,
        "bucket": record.bucket,
        "policy_set_version": record.policy_set_version,
        "policy_version": record.policy_version,
        "scorer_version": record.scorer_version,
        "category": record.category,
        "marketplace": record.marketplace,
        "main_image_id": record.main_image_id,
        "image_actions": actions,
        "image_count": len(actions),
        "rejected_count": sum(action == REJECT_ACTION for action in actions.values()),
        "error_count": record.error_count,
        "latency_ms": float(record.latency_ms),
    }


def _outcome_row(record: OutcomeRecord) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "type": record.type,
        "occurred_at": record.occurred_at,
        "unit_id": record.unit_id,
        "decision_id": record.decision_id,
        "value": None if record.value is None else float(record.value),
        "received_at": record.received_at,
    }


def _create_engine(url: str, *, pool_size: int, max_overflow: int) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        # Few connections per process: each replica writes from one outbox thread, and the
        # server's max_connections is shared by every replica (100 by default). Pre-ping drops
        # connections that died with a server restart instead of failing the next write.
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=30,
            connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"},
        )
    raise ValueError(f"unsupported store backend {backend!r}: use sqlite or postgresql")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # The busy timeout queues writers from other threads and processes instead of failing them.
    # FULL: a committed batch has already left the outbox, so it must survive a power cut;
    # batched writes make the fsync cheap.
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    """WAL lets reports read while the outbox writes. It sticks to the file, but switching a new
    file needs a lock that SQLite does not wait for: replicas opening it together retry."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _first_exposures(experiment_id: str) -> Select[tuple[str, str, datetime]]:
    return (
        select(
            decisions.c.variant,
            decisions.c.unit_id,
            func.min(decisions.c.created_at).label("first_exposed_at"),
        )
        .where(decisions.c.experiment_id == experiment_id)
        .group_by(decisions.c.variant, decisions.c.unit_id)
    )


def _p99_latency_by_variant(conn: Connection, experiment_id: str) -> dict[str, float]:
    # Nearest rank, ceil(0.99 n), in SQL both backends share: SQLite has no percentile_cont.
    ranked = (
        select(
            decisions.c.variant,
            decisions.c.latency_ms,
            func.row_number()
            .over(partition_by=decisions.c.variant, order_by=decisions.c.latency_ms)
            .label("rank"),
            func.count().over(partition_by=decisions.c.variant).label("n"),
        )
        .where(decisions.c.experiment_id == experiment_id)
        .subquery("ranked")
    )
    query = select(ranked.c.variant, ranked.c.latency_ms).where(
        ranked.c.rank == (ranked.c.n * 99 + 99) // 100
    )
    return {row.variant: float(row.latency_ms) for row in conn.execute(query)}


def _share(part: int, whole: int) -> float:
    # 0.0, not NaN, for an empty whole (a variant whose images all failed): reports compare equal.
    return part / whole if whole else 0.0


def _rounded(value: float | None) -> float:
    return 0.0 if value is None else round(float(value), VALUE_DECIMALS)
