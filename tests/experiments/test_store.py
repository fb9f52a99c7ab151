"""The decision store on SQLite and PostgreSQL: idempotent writes, report queries, concurrency."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Table, select

from experiments.records import OUTCOME_TYPES, DecisionRecord, Exposure, OutcomeRecord, UnitMetrics
from experiments.store import DecisionStore
from experiments.store_schema import decisions, outcomes
from tests.experiments.factories import T0, decision, outcome
from tests.experiments.postgres_server import PostgresServer


def stored_ids(store: DecisionStore, table: Table) -> list[str]:
    key = table.primary_key.columns.values()[0]
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(select(key))]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def zeros() -> dict[str, int]:
    return dict.fromkeys(OUTCOME_TYPES, 0)


def test_create_schema_twice_and_from_many_replicas_at_once(store_url: str) -> None:
    stores = [DecisionStore(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def create(store: DecisionStore) -> None:
        barrier.wait()
        store.create_schema()

    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(create, stores))
    stores[0].create_schema()
    assert stores[0].write_decisions([decision("d1")]) == 1
    for store in stores:
        store.close()


def test_sqlite_file_gets_its_folder_and_wal(tmp_path: Path) -> None:
    store = DecisionStore(f"sqlite:///{tmp_path / 'var' / 'nested' / 'curator.db'}")
    store.create_schema()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()
    assert (tmp_path / "var" / "nested" / "curator.db").exists()


def test_decisions_are_idempotent_by_decision_id(store: DecisionStore) -> None:
    assert store.write_decisions([decision("d1"), decision("d2"), decision("d3")]) == 3
    changed = decision("d2", variant="treatment", latency_ms=1.0)
    assert store.write_decisions([changed, decision("d4"), decision("d4")]) == 1
    assert sorted(stored_ids(store, decisions)) == ["d1", "d2", "d3", "d4"]
    # The first write wins: a re-delivered row never rewrites history.
    assert [s.variant for s in store.decision_stats("exp-1")] == ["control"]
    assert store.write_decisions([]) == 0


def test_outcomes_are_idempotent_by_event_id(store: DecisionStore) -> None:
    first = [outcome("e1", unit_id="u1"), outcome("e2", decision_id="d1")]
    assert store.write_outcomes(first) == 2
    again = [*first, outcome("e3", "purchase", unit_id="u1"), outcome("e3", unit_id="u1")]
    assert store.write_outcomes(again) == 1
    assert sorted(stored_ids(store, outcomes)) == ["e1", "e2", "e3"]


def test_timestamps_come_back_as_aware_utc(store: DecisionStore) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2026, 3, 1, 17, 30, 0, 123456, tzinfo=india)
    store.write_decisions([decision("d1", unit_id="u1", created_at=local)])
    [exposure] = store.exposures("exp-1")
    assert exposure.first_exposed_at == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert exposure.first_exposed_at.tzinfo is UTC


def test_records_refuse_what_the_store_would_refuse() -> None:
    with pytest.raises(ValueError, match="time zone"):
        decision("d1", created_at=datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="outcome type"):
        OutcomeRecord(event_id="e1", type="view", occurred_at=T0, unit_id="u1")
    with pytest.raises(ValueError, match="neither"):
        OutcomeRecord(event_id="e1", type="click", occurred_at=T0)


def test_exposures_are_first_decisions_per_variant_and_unit(store: DecisionStore) -> None:
    store.write_decisions(
        [
            decision("d1", unit_id="u2", created_at=minutes(3)),
            decision("d2", unit_id="u2", created_at=minutes(1)),
            decision("d3", unit_id="u1", created_at=minutes(2), variant="treatment"),
            decision("d4", unit_id="u9", experiment_id="exp-2"),
            decision("d5", unit_id="u8", experiment_id=None),
        ]
    )
    assert store.exposures("exp-1") == [
        Exposure("control", "u2", minutes(1)),
        Exposure("treatment", "u1", minutes(2)),
    ]
    assert store.exposures("no-such-experiment") == []


def test_unit_metrics_attribute_events_to_exposed_units(store: DecisionStore) -> None:
    store.write_decisions(
        [
            decision("d1", unit_id="u1", created_at=minutes(0)),
            decision("d2", unit_id="u1", created_at=minutes(10)),
            decision("d3", unit_id="u2", created_at=minutes(5), variant="treatment"),
            decision("d4", unit_id="u3", created_at=minutes(0), experiment_id="exp-2"),
            decision("d5", unit_id="u4", created_at=minutes(0)),
        ]
    )
    store.write_outcomes(
        [
            outcome("e1", "impression", 1, unit_id="u1"),
            outcome("e2", "click", 11, decision_id="d2"),  # by decision only
            # Names the unit and its decision: counted once.
            OutcomeRecord("e3", "purchase", minutes(12), "u1", "d1", value=19.99),
            # A named decision outranks a named unit.
            outcome("e4", "add_to_cart", 13, unit_id="u2", decision_id="d1"),
            outcome("e5", "click", 1, unit_id="u2"),  # before u2's first exposure: left out
            outcome("e6", "click", 6, unit_id="u2"),
            OutcomeRecord("e7", "purchase", minutes(7), decision_id="d3", value=5.0),
            OutcomeRecord("e8", "return", minutes(30), decision_id="d3", value=5.0),
            outcome("e9", "click", 1, unit_id="u3"),  # a unit of another experiment
            OutcomeRecord("e10", "purchase", minutes(2), decision_id="d4", value=7.0),
            outcome("e11", "click", 1, unit_id="never-decided"),
        ]
    )
    u1_counts = {**zeros(), "impression": 1, "click": 1, "add_to_cart": 1, "purchase": 1}
    u2_counts = {**zeros(), "click": 1, "purchase": 1, "return": 1}
    no_values = dict.fromkeys(OUTCOME_TYPES, 0.0)
    assert store.unit_metrics("exp-1") == [
        UnitMetrics("control", "u1", minutes(0), u1_counts, {**no_values, "purchase": 19.99}),
        UnitMetrics("control", "u4", minutes(0), zeros(), no_values),
        UnitMetrics(
            "treatment", "u2", minutes(5), u2_counts, {**no_values, "purchase": 5.0, "return": 5.0}
        ),
    ]


def test_decision_stats_per_variant(store: DecisionStore) -> None:
    latencies = [float(ms) for ms in range(1, 201)]
    random.Random(7).shuffle(latencies)
    control = [
        decision(
            f"c{i}",
            unit_id=f"u{i % 50}",
            latency_ms=latency,
            error_count=1 if i < 10 else 0,
            image_actions={
                "a": "approve",
                "b": "review",
                "c": "approve",
                "d": "reject" if i % 2 else "approve",
            },
        )
        for i, latency in enumerate(latencies)
    ]
    treatment = decision("t0", variant="treatment", latency_ms=42.0, image_actions={})
    store.write_decisions([*control, treatment, decision("x0", experiment_id="exp-2")])
    [control_stats, treatment_stats] = store.decision_stats("exp-1")
    assert control_stats.variant == "control"
    assert (control_stats.decisions, control_stats.units) == (200, 50)
    assert (control_stats.decisions_with_errors, control_stats.error_rate) == (10, 0.05)
    assert control_stats.p99_latency_ms == 198.0  # nearest rank: ceil(0.99 * 200) = 198th
    assert (control_stats.images, control_stats.rejected_images) == (800, 100)
    assert control_stats.reject_rate == 0.125
    assert treatment_stats.p99_latency_ms == 42.0
    assert (treatment_stats.images, treatment_stats.reject_rate) == (0, 0.0)


def random_history(seed: int) -> tuple[list[DecisionRecord], list[OutcomeRecord]]:
    """Decisions and events with awkward ids (case, punctuation, non-ASCII), zones and floats."""
    rng = random.Random(seed)
    units = ["a", "B", "b", "_x", "Z-1", "é", "a b", "10", "9", "ü-2", "Ab", "aB"]
    zones = [UTC, timezone(timedelta(hours=-8)), timezone(timedelta(hours=5, minutes=30))]
    history = []
    for i in range(300):
        created = T0 + timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6))
        history.append(
            decision(
                f"d{i}",
                unit_id=rng.choice(units),
                created_at=created.astimezone(rng.choice(zones)),
                experiment_id=rng.choice(["exp-1", "exp-2", None]),
                variant=rng.choice(["control", "Treatment", "treatment-b"]),
                error_count=rng.choice([0, 0, 0, 1, 2]),
                latency_ms=rng.uniform(5, 900),
                image_actions={
                    f"i{k}": rng.choice(["approve", "reject", "review"]) for k in range(4)
                },
            )
        )
    events = []
    for i in range(1500):
        target = rng.choice(["unit", "decision", "both"])
        events.append(
            OutcomeRecord(
                event_id=f"e{i}",
                type=rng.choice(OUTCOME_TYPES),
                occurred_at=(T0 + timedelta(seconds=rng.randrange(2 * 86_400))).astimezone(
                    rng.choice(zones)
                ),
                unit_id=rng.choice(units) if target != "decision" else None,
                decision_id=f"d{rng.randrange(320)}" if target != "unit" else None,
                value=rng.choice([None, rng.uniform(0, 500), 0.1, 0.2, 1 / 3]),
            )
        )
    return history, events


def test_reports_are_identical_on_sqlite_and_postgresql(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    history, events = random_history(seed=2026)
    reports = []
    for url in (f"sqlite:///{tmp_path / 'curator.db'}", postgres_server.create_database()):
        store = DecisionStore(url)
        store.create_schema()
        store.write_decisions(history)
        store.write_outcomes(events)
        reports.append(
            [
                (store.exposures(e), store.unit_metrics(e), store.decision_stats(e))
                for e in ("exp-1", "exp-2")
            ]
        )
        store.close()
    sqlite_reports, postgres_reports = reports
    assert sqlite_reports == postgres_reports
    exposures, metrics, stats = sqlite_reports[0]
    assert len(exposures) > 20 and sum(sum(m.counts.values()) for m in metrics) > 50
    keys = [(m.variant, m.unit_id) for m in metrics]
    assert keys == sorted(keys)  # code point order, whatever the database's collation
    assert {type(s.p99_latency_ms) for s in stats} == {float}


def test_concurrent_writers_lose_nothing_and_count_each_row_once(store_url: str) -> None:
    # Two store objects stand for two processes sharing one SQLite file or one PostgreSQL.
    stores = [DecisionStore(store_url), DecisionStore(store_url)]
    stores[0].create_schema()
    writers, batches, batch_size = 6, 30, 10
    barrier = threading.Barrier(writers)

    def write(writer: int) -> int:
        store = stores[writer % 2]
        new = 0
        barrier.wait()
        for batch in range(batches):
            start = (writer * batches + batch) * batch_size
            own = [f"d{n:06d}" for n in range(start, start + batch_size)]
            # Overlap with the next writer's rows, in the reverse order: duplicate deliveries.
            theirs = [f"d{(n + batches * batch_size) % 1800:06d}" for n in range(start, start + 3)]
            ids = [*own, *reversed(theirs)]
            new += store.write_decisions([decision(i) for i in ids])
            new += store.write_outcomes([outcome(f"e-{i}", unit_id="u1") for i in ids])
        return new

    with ThreadPoolExecutor(writers) as pool:
        inserted = sum(pool.map(write, range(writers)))
    expected = writers * batches * batch_size
    assert inserted == 2 * expected
    assert len(stored_ids(stores[0], decisions)) == expected
    assert len(set(stored_ids(stores[1], outcomes))) == expected
    for store in stores:
        store.close()
