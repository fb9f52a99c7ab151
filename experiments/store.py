"""The decision and outcome store: what each variant decided, and what customers did next.

SQLAlchemy Core over two backends that must answer alike: SQLite (the embedded default, one
file, WAL) and PostgreSQL (clusters, many ingress replicas writing at once). Writes are
idempotent by primary key, so the outbox may deliver a row more than once. Report queries return
plain frozen rows, ordered and rounded in Python, so both backends give identical answers.
What differs between the backends lives in `experiments.store_backend`. The canary controller's
transitions are kept here too, so every runner of a ramp reads one history.

The request path never writes here directly: it goes through `experiments.outbox.Outbox`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ColumnElement,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Subquery,
    Table,
    Text,
    and_,
    case,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from curator.errors import CuratorError
from experiments.canary import Transition
from experiments.records import (
    OUTCOME_TYPES,
    REJECT_ACTION,
    DecisionRecord,
    Exposure,
    OutcomeRecord,
    UnitMetrics,
    VariantDecisionStats,
)
from experiments.store_backend import UtcDateTime, create_store_engine, take_write_lock

# Summed outcome values (money) are rounded to this many decimals: SQLite and PostgreSQL add
# floats in different orders, and reports must not differ in the last bit.
VALUE_DECIMALS = 6


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


class TransitionConflict(CuratorError):
    """A canary transition was decided on a stale history: another writer recorded one first."""

    status = 409
    code = "canary_transition_conflict"


class DecisionStore:
    """Decisions and outcomes on SQLite (`sqlite:///var/curator.db`) or PostgreSQL
    (`postgresql+psycopg://user:password@host/db`).

    Thread-safe: every call takes its own pooled connection.
    """

    def __init__(self, url: str, *, pool_size: int = 4, max_overflow: int = 4) -> None:
        self.engine = create_store_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.dialect = self.engine.dialect.name

    def create_schema(self) -> None:
        """Create missing tables and indexes; safe to call from many replicas at once."""
        with self.engine.begin() as conn:
            # Replicas starting together would race between "does the table exist" and CREATE:
            # take the database's write lock first, so one creates and the others see it done.
            take_write_lock(conn, "curator.schema")
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

    def exposures(self, experiment_id: str, since: datetime | None = None) -> list[Exposure]:
        """Every unit each variant decided for, with its first exposure; by variant, unit.

        `since` (e.g. the start of a canary's ramp step) counts only decisions made at or after
        it, so a unit is in if it was decided for since then, and its first exposure is its
        first one since then. Assignment is deterministic and a ramp only moves control units
        into the treatment, so every unit decided for since then got the weights of then.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(_first_exposures(experiment_id, since)).all()
        exposures = [Exposure(row.variant, row.unit_id, row.first_exposed_at) for row in rows]
        return sorted(exposures, key=lambda exposure: (exposure.variant, exposure.unit_id))

    def unit_metrics(self, experiment_id: str, since: datetime | None = None) -> list[UnitMetrics]:
        """Per (variant, unit): outcome counts and summed values from the first exposure on.

        An event belongs to the unit of the decision it names, else to the unit it names, so an
        event naming both counts once. Events before the unit's first exposure are left out: the
        variant cannot have caused them. `since` as in `exposures`: units decided for since
        then, and their events from their first exposure since then.
        """
        exposed = _first_exposures(experiment_id, since).subquery("exposed")
        events = _events_per_unit(experiment_id, since).subquery("events")
        query = select(
            exposed.c.variant,
            exposed.c.unit_id,
            exposed.c.first_exposed_at,
            *(events.c[name] for name in _event_columns()),
        ).select_from(
            exposed.outerjoin(
                events,
                and_(events.c.variant == exposed.c.variant, events.c.unit_id == exposed.c.unit_id),
            )
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        metrics = [
            UnitMetrics(
                variant=row.variant,
                unit_id=row.unit_id,
                first_exposed_at=row.first_exposed_at,
                # No event at all leaves the outer join's columns empty (NULL).
                counts={kind: int(row._mapping[f"n_{kind}"] or 0) for kind in OUTCOME_TYPES},
                values={kind: _rounded(row._mapping[f"v_{kind}"]) for kind in OUTCOME_TYPES},
            )
            for row in rows
        ]
        # Sorted here, not in SQL: PostgreSQL's collation may order text unlike SQLite's bytes.
        return sorted(metrics, key=lambda metric: (metric.variant, metric.unit_id))

    def decision_stats(
        self, experiment_id: str, since: datetime | None = None
    ) -> list[VariantDecisionStats]:
        """Per variant: decisions, error rate, p99 latency, reject rate; ordered by variant.

        `since`: only decisions made at or after it.
        """
        totals_query = (
            select(
                decisions.c.variant,
                func.count().label("decisions"),
                func.count(decisions.c.unit_id.distinct()).label("units"),
                func.count(case((decisions.c.error_count > 0, 1))).label("with_errors"),
                func.sum(decisions.c.image_count).label("images"),
                func.sum(decisions.c.rejected_count).label("rejected"),
            )
            .where(_in_experiment(experiment_id, since))
            .group_by(decisions.c.variant)
        )
        with self.engine.connect() as conn:
            totals = conn.execute(totals_query).all()
            p99 = _p99_latency_by_variant(conn, experiment_id, since)
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

    def record_transition(
        self, experiment_id: str, transition: Transition, *, after: int | None = None
    ) -> None:
        """Append a canary transition to the experiment's history as the next `seq`.

        Writers of one experiment are serialised (`take_write_lock`), so two at once get
        consecutive numbers, never the same one. `after` is the number of transitions the
        caller's decision was based on: if the history has grown since (another runner decided
        first), appending would apply a stale decision on top of a newer one, e.g. advance a
        step twice, so it raises `TransitionConflict` instead. The (experiment_id, seq) key is
        the backstop against writers that bypass this method.
        """
        with self.engine.begin() as conn:
            take_write_lock(conn, f"curator.canary_transitions:{experiment_id}")
            recorded = _last_seq(conn, experiment_id)
            if after is not None and recorded != after:
                raise TransitionConflict(
                    f"experiment {experiment_id}: a {transition.kind} was decided on "
                    f"{after} transitions, but {recorded} are recorded by now"
                )
            conn.execute(
                canary_transitions.insert().values(
                    experiment_id=experiment_id,
                    seq=recorded + 1,
                    kind=transition.kind,
                    from_percent=transition.from_percent,
                    to_percent=transition.to_percent,
                    reason=transition.reason,
                    at=transition.at,
                )
            )

    def transitions(self, experiment_id: str) -> list[Transition]:
        """The experiment's canary transitions in the order they were recorded."""
        query = (
            select(canary_transitions)
            .where(canary_transitions.c.experiment_id == experiment_id)
            .order_by(canary_transitions.c.seq)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Transition(row.kind, row.from_percent, row.to_percent, row.reason, row.at)
            for row in rows
        ]


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


def _last_seq(conn: Connection, experiment_id: str) -> int:
    query = select(func.coalesce(func.max(canary_transitions.c.seq), 0)).where(
        canary_transitions.c.experiment_id == experiment_id
    )
    return int(conn.execute(query).scalar_one())


def _in_experiment(experiment_id: str, since: datetime | None) -> ColumnElement[bool]:
    in_experiment = decisions.c.experiment_id == experiment_id
    return in_experiment if since is None else and_(in_experiment, decisions.c.created_at >= since)


def _first_exposures(
    experiment_id: str, since: datetime | None = None
) -> Select[tuple[str, str, datetime]]:
    return (
        select(
            decisions.c.variant,
            decisions.c.unit_id,
            func.min(decisions.c.created_at).label("first_exposed_at"),
        )
        .where(_in_experiment(experiment_id, since))
        .group_by(decisions.c.variant, decisions.c.unit_id)
    )


def _events_per_unit(experiment_id: str, since: datetime | None) -> Select[tuple[Any, ...]]:
    """Per exposed (variant, unit): its events' counts and value sums by type.

    Only units with events; `unit_metrics` adds the others. Summing before joining the
    exposures matters on SQLite: an event's unit is computed (coalesce), so nothing indexes
    it, and an outer join from the exposures would scan every event once per unit. Driven from
    the events instead, SQLite builds a temporary index on the exposures.
    """
    exposed = _first_exposures(experiment_id, since).subquery("exposed_units")
    attributed = _attributed_events()
    per_type = []
    for kind in OUTCOME_TYPES:
        is_kind = attributed.c.type == kind
        per_type.append(func.count(case((is_kind, 1))).label(f"n_{kind}"))
        per_type.append(func.sum(case((is_kind, attributed.c.value))).label(f"v_{kind}"))
    return (
        select(exposed.c.variant, exposed.c.unit_id, *per_type)
        .select_from(
            attributed.join(
                exposed,
                and_(
                    attributed.c.unit_id == exposed.c.unit_id,
                    attributed.c.occurred_at >= exposed.c.first_exposed_at,
                ),
            )
        )
        .group_by(exposed.c.variant, exposed.c.unit_id)
    )


def _attributed_events() -> Subquery:
    """Every event with the unit it belongs to: its decision's unit, else the unit it names."""
    target = decisions.alias("target")
    return (
        select(
            outcomes.c.type,
            outcomes.c.value,
            outcomes.c.occurred_at,
            func.coalesce(target.c.unit_id, outcomes.c.unit_id).label("unit_id"),
        )
        .select_from(outcomes.outerjoin(target, target.c.decision_id == outcomes.c.decision_id))
        .subquery("attributed")
    )


def _event_columns() -> list[str]:
    return [f"{prefix}_{kind}" for kind in OUTCOME_TYPES for prefix in ("n", "v")]


def _p99_latency_by_variant(
    conn: Connection, experiment_id: str, since: datetime | None
) -> dict[str, float]:
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
        .where(_in_experiment(experiment_id, since))
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
