"""The store's part in the canary: the transitions table, and counting a ramp step `since` it
began. Both backends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from experiments.canary import Transition
from experiments.records import Exposure
from experiments.store import DecisionStore, TransitionConflict
from tests.experiments.factories import T0, decision, outcome


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def advance(from_percent: float, to_percent: float, at: float = 0) -> Transition:
    return Transition(
        "advance", from_percent, to_percent, f"advanced to {to_percent:g}%", minutes(at)
    )


def test_transitions_come_back_in_order_per_experiment(store: DecisionStore) -> None:
    history = [
        advance(1, 5, at=10),
        advance(5, 25, at=20),
        Transition("rollback", 25, 0, "rolled back: guardrail error_rate is harmed", minutes(30)),
    ]
    for transition in history:
        store.record_transition("exp-1", transition)
    store.record_transition("exp-2", advance(10, 50))
    assert store.transitions("exp-1") == history
    assert store.transitions("exp-2") == [advance(10, 50)]
    assert store.transitions("never-ran") == []


def test_a_decision_on_a_stale_history_is_refused(store: DecisionStore) -> None:
    store.record_transition("exp-1", advance(1, 5), after=0)
    # Another runner decided on the same (empty) history: applying it would advance twice.
    with pytest.raises(TransitionConflict, match="decided on 0 transitions, but 1 are recorded"):
        store.record_transition("exp-1", advance(1, 5), after=0)
    store.record_transition("exp-1", advance(5, 25), after=1)
    assert [t.to_percent for t in store.transitions("exp-1")] == [5, 25]


@pytest.mark.parametrize("after", [None, 0], ids=["append", "decided-on-empty-history"])
def test_concurrent_writers_never_share_a_seq(store_url: str, after: int | None) -> None:
    # Two store objects stand for two runner processes on one database.
    stores = [DecisionStore(store_url), DecisionStore(store_url)]
    stores[0].create_schema()
    writers = 6
    barrier = threading.Barrier(writers)

    def write(writer: int) -> bool:
        barrier.wait()
        try:
            stores[writer % 2].record_transition("exp-1", advance(1, 5, at=writer), after=after)
        except TransitionConflict:
            return False
        return True

    with ThreadPoolExecutor(writers) as pool:
        recorded = sum(pool.map(write, range(writers)))
    # Appending: every writer gets its own seq. On one base history: exactly one wins.
    assert recorded == (writers if after is None else 1)
    assert len(stores[1].transitions("exp-1")) == recorded
    for store in stores:
        store.close()


def test_since_counts_what_was_decided_from_then_on(store: DecisionStore) -> None:
    step_start = minutes(10)
    store.write_decisions(
        [
            decision("d1", unit_id="old", created_at=minutes(1)),  # before the step only
            decision("d2", unit_id="back", created_at=minutes(2)),  # before, and again in it
            decision("d3", unit_id="back", created_at=minutes(12), variant="treatment"),
            decision("d4", unit_id="new", created_at=step_start, error_count=1),
        ]
    )
    store.write_outcomes(
        [
            outcome("e1", "click", 3, unit_id="back"),  # before its first exposure in the step
            outcome("e2", "click", 13, unit_id="back"),
            outcome("e3", "click", 11, decision_id="d4"),
            outcome("e4", "click", 11, unit_id="old"),  # a unit not decided for in the step
        ]
    )
    assert store.exposures("exp-1", since=step_start) == [
        Exposure("control", "new", step_start),
        Exposure("treatment", "back", minutes(12)),
    ]
    metrics = store.unit_metrics("exp-1", since=step_start)
    assert [(m.variant, m.unit_id, m.counts["click"]) for m in metrics] == [
        ("control", "new", 1),
        ("treatment", "back", 1),
    ]
    stats = {row.variant: row for row in store.decision_stats("exp-1", since=step_start)}
    assert {variant: row.decisions for variant, row in stats.items()} == {
        "control": 1,
        "treatment": 1,
    }
    assert stats["control"].decisions_with_errors == 1
    # Without `since`: everything, as before.
    assert len(store.exposures("exp-1")) == 4
    assert sum(row.decisions for row in store.decision_stats("exp-1")) == 4
    assert store.unit_metrics("exp-1", since=minutes(60)) == []
