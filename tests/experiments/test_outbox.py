"""The outbox: puts never wait on the store, rows reach it exactly once, outages and restarts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from experiments.outbox import (
    METRIC_DEAD_LETTERS,
    METRIC_STORE_ERRORS,
    METRIC_STORED,
    Outbox,
)
from experiments.records import DecisionRecord, OutcomeRecord
from experiments.store import DecisionStore
from experiments.store_schema import decisions, outcomes
from tests.experiments.factories import decision, outcome
from tests.experiments.postgres_server import PostgresServer

# Liveness bound for waits on background work; generous, never a performance assertion.
PATIENCE_S = 120.0
FAST_RETRIES: dict[str, Any] = {
    "flush_interval_s": 0.01,
    "retry_initial_s": 0.01,
    "retry_max_s": 0.2,
}


class Metrics:
    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, name: str, amount: float) -> None:
        with self._lock:
            self.totals[name] += int(amount)


class UnreachableStore:
    """A store whose database is down."""

    def write_decisions(self, records: Sequence[DecisionRecord]) -> int:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))

    def write_outcomes(self, records: Sequence[OutcomeRecord]) -> int:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))




def stored(store: DecisionStore) -> tuple[list[str], list[str]]:
    with store.engine.connect() as conn:
        decision_ids = [row[0] for row in conn.execute(select(decisions.c.decision_id))]
        event_ids = [row[0] for row in conn.execute(select(outcomes.c.event_id))]
    return sorted(decision_ids), sorted(event_ids)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def test_puts_reach_the_store_exactly_once(store: DecisionStore, tmp_path: Path) -> None:
    metrics = Metrics()
    outbox = Outbox(tmp_path / "outbox.db", store, batch_size=7, on_metric=metrics)
    for i in range(40):
        assert outbox.put_decision(decision(f"d{i:02d}"))
    assert outbox.put_outcomes([outcome(f"e{i:02d}", unit_id="u1") for i in range(25)])
    assert outbox.put_outcomes([])
    assert outbox.flush(PATIENCE_S)
    assert outbox.pending() == 0
    assert stored(store) == ([f"d{i:02d}" for i in range(40)], [f"e{i:02d}" for i in range(25)])
    assert metrics.totals[METRIC_STORED] == 65
    outbox.close()


def test_puts_from_many_threads_while_draining(store: DecisionStore, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", store, batch_size=50, flush_interval_s=0.01)
    threads, per_thread = 8, 100

    def produce(thread: int) -> None:
        for i in range(per_thread):
            assert outbox.put_decision(decision(f"t{thread}-{i:03d}"))
            assert outbox.put_outcomes([outcome(f"t{thread}-e{i:03d}", unit_id="u1")])

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert outbox.flush(PATIENCE_S)
    decision_ids, event_ids = stored(store)
    assert len(decision_ids) == len(event_ids) == threads * per_thread
    outbox.close()


def test_flush_reports_rows_it_could_not_deliver(tmp_path: Path) -> None:
    metrics = Metrics()
    outbox = Outbox(tmp_path / "outbox.db", UnreachableStore(), on_metric=metrics, **FAST_RETRIES)
    assert outbox.put_decision(decision("d1"))
    assert not outbox.flush(timeout=0.3)
    assert outbox.pending() == 1
    assert metrics.totals[METRIC_STORE_ERRORS] >= 1
    outbox.close(timeout=0)


def test_a_restarted_process_drains_what_the_last_one_left(
    store: DecisionStore, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    before = Outbox(path, UnreachableStore(), **FAST_RETRIES)
    for i in range(30):
        assert before.put_decision(decision(f"d{i:02d}"))
    assert before.put_outcomes([outcome(f"e{i}", unit_id="u1") for i in range(10)])
    before.close(timeout=0)  # the process ends with everything still pending

    after = Outbox(path, store, **FAST_RETRIES)
    assert after.flush(PATIENCE_S)
    assert stored(store) == ([f"d{i:02d}" for i in range(30)], [f"e{i}" for i in range(10)])
    after.close()


def test_a_row_the_database_refuses_is_set_aside_not_retried_forever(
    store: DecisionStore, tmp_path: Path
) -> None:
    metrics = Metrics()
    outbox = Outbox(tmp_path / "outbox.db", store, batch_size=10, on_metric=metrics)
    refused = decision("bad", category=None)  # NOT NULL in the database
    for record in [decision("d1"), refused, decision("d2")]:
        assert outbox.put_decision(record)
    assert outbox.flush(PATIENCE_S)
    assert stored(store)[0] == ["d1", "d2"]
    assert outbox.dead_letters() == 1
    assert metrics.totals[METRIC_DEAD_LETTERS] == 1
    outbox.close()


def test_put_after_close_fails_quietly(store: DecisionStore, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", store)
    outbox.close()
    assert outbox.put_decision(decision("d1")) is False


def test_decisions_keep_coming_through_a_postgres_outage(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    store = DecisionStore(postgres_server.create_database())
    store.create_schema()
    metrics = Metrics()
    outbox = Outbox(tmp_path / "outbox.db", store, batch_size=25, on_metric=metrics, **FAST_RETRIES)
    producers, stop_producing = 4, threading.Event()
    queued: list[list[str]] = [[] for _ in range(producers)]

    def produce(producer: int) -> None:
        while not stop_producing.is_set():
            decision_id = f"p{producer}-{len(queued[producer]):05d}"
            # Never raises and never waits on the database, whether it is up or down.
            assert outbox.put_decision(decision(decision_id, unit_id=f"u{producer}"))
            queued[producer].append(decision_id)
            time.sleep(0.001)

    def total_queued() -> int:
        return sum(len(ids) for ids in queued)

    workers = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: metrics.totals[METRIC_STORED] >= 100, "first rows stored")
        postgres_server.stop()
        queued_at_outage = total_queued()
        wait_until(lambda: metrics.totals[METRIC_STORE_ERRORS] >= 3, "failed drains")
        wait_until(lambda: total_queued() >= queued_at_outage + 200, "puts during the outage")
        assert outbox.pending() > 0
    finally:
        postgres_server.start()
    queued_at_recovery = total_queued()
    wait_until(lambda: total_queued() >= queued_at_recovery + 100, "puts after the outage")
    stop_producing.set()
    for worker in workers:
        worker.join()

    assert outbox.flush(PATIENCE_S)
    expected = sorted(decision_id for ids in queued for decision_id in ids)
    assert stored(store)[0] == expected
    assert outbox.dead_letters() == 0
    outbox.close()
    store.close()
