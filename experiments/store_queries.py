"""The store's reads for reports and the canary: exposures, per-unit outcomes and per-variant
decision figures of one experiment, optionally from a moment on (`since`, a ramp step's start).

Rows come back as plain frozen records, ordered and rounded in Python rather than SQL, so
SQLite and PostgreSQL give identical answers. `DecisionStore` (experiments.store) opens the
connection and documents what each read means.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, case, func, select
from sqlalchemy.engine import Connection

from experiments.records import OUTCOME_TYPES, Exposure, UnitMetrics, VariantDecisionStats
from experiments.store_schema import decisions, outcomes

# Summed outcome values (money) are rounded to this many decimals: SQLite and PostgreSQL add
# floats in different orders, and reports must not differ in the last bit.
VALUE_DECIMALS = 6


def read_exposures(conn: Connection, experiment_id: str, since: datetime | None) -> list[Exposure]:
    rows = conn.execute(_first_exposures(experiment_id, since)).all()
    exposures = [Exposure(row.variant, row.unit_id, row.first_exposed_at) for row in rows]
    return sorted(exposures, key=lambda exposure: (exposure.variant, exposure.unit_id))


def read_unit_metrics(
    conn: Connection, experiment_id: str, since: datetime | None
) -> list[UnitMetrics]:
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


def read_decision_stats(
    conn: Connection, experiment_id: str, since: datetime | None
) -> list[VariantDecisionStats]:
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
