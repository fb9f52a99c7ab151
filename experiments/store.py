"""The decision and outcome store: what each variant decided, and what customers did next.

SQLAlchemy Core over two backends that must answer alike: SQLite (the embedded default, one
file, WAL) and PostgreSQL (clusters, many ingress replicas writing at once). Writes are
idempotent by primary key, so the outbox may deliver a row more than once. Report queries return
plain frozen rows, ordered and rounded in Python, so both backends give identical answers.
The tables live in `experiments.store_schema`, the report queries in `experiments.store_queries`,
and what differs between the backends in `experiments.store_backend`. The canary controller's
transitions are kept here too, so every runner of a ramp reads one history.

The request path never writes here directly: it goes through `experiments.outbox.Outbox`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from curator.contracts.errors import CuratorError
from experiments.canary import Transition
from experiments.records import (
    REJECT_ACTION,
    DecisionRecord,
    Exposure,
    OutcomeRecord,
    UnitMetrics,
    VariantDecisionStats,
)
from experiments.review_records import ReviewItem
from experiments.review_store import ReviewStore
from experiments.store_backend import create_store_engine, take_write_lock
from experiments.store_queries import read_decision_stats, read_exposures, read_unit_metrics
from experiments.store_schema import canary_transitions, create_missing, decisions, outcomes


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
        # The review queue's tables, on the same database (experiments.review_store).
        self.review = ReviewStore(self.engine)

    def create_schema(self) -> None:
        """Create missing tables and indexes; safe to call from many replicas at once."""
        with self.engine.begin() as conn:
            # Replicas starting together would race between "does the table exist" and CREATE:
            # take the database's write lock first, so one creates and the others see it done.
            take_write_lock(conn, "curator.schema")
            create_missing(conn)

    def close(self) -> None:
        self.engine.dispose()

    def write_decisions(self, records: Sequence[DecisionRecord]) -> int:
        """Insert decisions, ignoring ids already stored; returns how many were new."""
        return self._insert_new(decisions, [_decision_row(record) for record in records])

    def write_outcomes(self, records: Sequence[OutcomeRecord]) -> int:
        """Insert outcome events, ignoring ids already stored; returns how many were new."""
        return self._insert_new(outcomes, [_outcome_row(record) for record in records])

    def write_review_items(self, records: Sequence[ReviewItem]) -> int:
        """Insert review items (the outbox's third kind), ignoring those already stored."""
        return self.review.write_items(records)

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
            return read_exposures(conn, experiment_id, since)

    def unit_metrics(self, experiment_id: str, since: datetime | None = None) -> list[UnitMetrics]:
        """Per (variant, unit): outcome counts and summed values from the first exposure on.

        An event belongs to the unit of the decision it names, else to the unit it names, so an
        event naming both counts once. Events before the unit's first exposure are left out: the
        variant cannot have caused them. `since` as in `exposures`: units decided for since
        then, and their events from their first exposure since then.
        """
        with self.engine.connect() as conn:
            return read_unit_metrics(conn, experiment_id, since)

    def decision_stats(
        self, experiment_id: str, since: datetime | None = None
    ) -> list[VariantDecisionStats]:
        """Per variant: decisions, error rate, p99 latency, reject rate; ordered by variant.

        `since`: only decisions made at or after it.
        """
        with self.engine.connect() as conn:
            return read_decision_stats(conn, experiment_id, since)

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
