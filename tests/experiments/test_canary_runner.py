"""The canary runner over the store, fed seeded simulated traffic: a worse treatment is rolled
back, a better one walks the ramp and is promoted, a harmed guardrail rolls back, the state
survives a restart, and SQLite and PostgreSQL decide alike."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from experiments.assignment import assign
from experiments.canary import OperationalReading, Transition
from experiments.canary_runner import CanaryHistoryError, CanaryRunner
from experiments.config import ExperimentConfig, experiments_from_data
from experiments.records import OutcomeRecord
from experiments.sequential import SequentialResult
from experiments.store import DecisionStore
from tests.experiments.factories import T0, decision
from tests.experiments.postgres_server import PostgresServer

LOOK_MINUTES = 10
CLICK_RATES = {"control": 0.20, "worse": 0.18, "better": 0.22}

# A walk through the ramp on little traffic: 300 units per variant and step.
RAMPED: dict[str, Any] = {
    "id": "canary",
    "variants": [{"name": "control"}, {"name": "treatment"}],
    "primary_metric": "click",
    "guardrails": ["error_rate"],
    "min_sample_per_variant": 300,
    "sequential_n_star": 5000,
    "ramp": [10, 30, 50],
    "status": "running",
}
# Telling a 10% drop in a 20% click rate takes some 7,000 units per variant at 50/50, often
# more: this canary is tuned (N*) for that sample and asks for far more before it promotes, so
# the drop is found first (seeds 1 to 6 all roll back, after 8,000 to 36,000 units).
POWERED = {**RAMPED, "ramp": [50], "min_sample_per_variant": 20_000, "sequential_n_star": 16_000}


def experiment(base: Mapping[str, Any] = RAMPED, **overrides: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**base, **overrides})




@dataclass
class Traffic:
    """Seeded listings: each look, a batch of new units is decided with the weights the runner
    serves (the real hash), clicks follow per unit, then the runner ticks."""

    runner: CanaryRunner
    experiment: ExperimentConfig
    treatment_click_rate: float
    treatment_error_rate: float = 0.0
    seed: int = 0
    looks: int = 0
    units: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def look(self, batch: int) -> list[Transition]:
        return self.runner.tick(self.write(batch))

    def write(self, batch: int) -> datetime:
        """Decide for a batch of new units and store their clicks; returns the look's time."""
        start = T0 + timedelta(minutes=LOOK_MINUTES * self.looks)
        weights = self.runner.weights(self.experiment.id)
        decisions, clicks = [], []
        for offset in range(batch):
            unit_id = f"listing-{self.units + offset}"
            assignment = assign(self.experiment, unit_id, weights)
            treated = assignment.variant == "treatment"
            created = start + timedelta(seconds=offset / batch * 60)
            error_rate = self.treatment_error_rate if treated else 0.0
            decisions.append(
                decision(
                    f"d-{unit_id}",
                    unit_id=unit_id,
                    created_at=created,
                    experiment_id=self.experiment.id,
                    variant=assignment.variant,
                    bucket=assignment.bucket,
                    error_count=int(self.rng.random() < error_rate),
                )
            )
            click_rate = self.treatment_click_rate if treated else CLICK_RATES["control"]
            if self.rng.random() < click_rate:
                clicks.append(
                    OutcomeRecord(
                        f"click-{unit_id}", "click", created + timedelta(minutes=2), unit_id
                    )
                )
        self.runner.store.write_decisions(decisions)
        self.runner.store.write_outcomes(clicks)
        self.looks += 1
        self.units += batch
        return start + timedelta(minutes=LOOK_MINUTES - 1)

    def until_done(self, batch: int, max_looks: int) -> list[Transition]:
        """Looks until the canary is promoted or rolled back; every transition on the way."""
        transitions: list[Transition] = []
        for _ in range(max_looks):
            transitions += self.look(batch)
            if self.runner.state(self.experiment.id).status != "ramping":
                return transitions
        raise AssertionError(f"still ramping after {max_looks} looks: {transitions}")


def test_a_ten_percent_worse_treatment_is_rolled_back(
    store: DecisionStore, caplog: pytest.LogCaptureFixture
) -> None:
    canary = experiment(POWERED)
    runner = CanaryRunner(store, {canary.id: canary})
    traffic = Traffic(runner, canary, CLICK_RATES["worse"], seed=4)  # 18,000 units
    with caplog.at_level(logging.INFO, logger="experiments.canary_runner"):
        [rollback] = traffic.until_done(batch=2000, max_looks=20)
    assert (rollback.kind, rollback.from_percent, rollback.to_percent) == ("rollback", 50, 0)
    assert rollback.reason.startswith(
        "rolled back from 50%: primary metric click is significantly worse"
    )
    assert runner.state(canary.id).status == "rolled_back"
    assert runner.weights(canary.id) == {"treatment": 0.0, "control": 1.0}
    assert store.transitions(canary.id) == [rollback]
    assert rollback.reason in caplog.text
    assert traffic.look(batch=100) == []  # final: nothing more is decided


def test_a_ten_percent_better_treatment_walks_the_ramp_and_is_promoted(
    store: DecisionStore,
) -> None:
    canary = experiment()
    runner = CanaryRunner(store, {canary.id: canary})
    traffic = Traffic(runner, canary, CLICK_RATES["better"], seed=2)
    served = [runner.weights(canary.id)["treatment"]]
    while runner.state(canary.id).status == "ramping":
        if traffic.look(batch=1000):
            served.append(runner.weights(canary.id)["treatment"])
        assert traffic.looks < 20
    assert served == [0.1, 0.3, 0.5, 1.0]
    history = store.transitions(canary.id)
    assert [(t.kind, t.from_percent, t.to_percent) for t in history] == [
        ("advance", 10, 30),
        ("advance", 30, 50),
        ("promote", 50, 100),
    ]
    assert "every variant has at least 300 units" in history[-1].reason
    assert runner.state(canary.id).history == tuple(history)
    assert runner.step_started_at(canary.id) == history[-1].at


def test_a_harmed_guardrail_rolls_back(store: DecisionStore) -> None:
    canary = experiment()
    runner = CanaryRunner(store, {canary.id: canary})
    # Clicks as control's, but one treatment request in ten fails (tolerance: 0.5 points).
    traffic = Traffic(runner, canary, CLICK_RATES["control"], treatment_error_rate=0.10, seed=3)
    rollback = traffic.until_done(batch=1000, max_looks=10)[-1]
    assert rollback.kind == "rollback"
    assert "guardrail error_rate is harmed" in rollback.reason
    assert "beyond the tolerance of 0.005" in rollback.reason
    assert runner.weights(canary.id)["treatment"] == 0.0


def test_the_state_survives_a_restart(store_url: str) -> None:
    canary = experiment()
    first_store = DecisionStore(store_url)
    first_store.create_schema()
    first = CanaryRunner(first_store, {canary.id: canary})
    traffic = Traffic(first, canary, CLICK_RATES["better"], seed=2)
    assert first.step_started_at(canary.id) is None
    while not traffic.look(batch=1000):
        assert traffic.looks < 10
    state = first.state(canary.id)
    first_store.close()

    restarted_store = DecisionStore(store_url)
    restarted = CanaryRunner(restarted_store, {canary.id: canary})
    assert restarted.state(canary.id) == state
    assert restarted.weights(canary.id) == {"treatment": 0.3, "control": 0.7}
    assert restarted.step_started_at(canary.id) == state.history[-1].at
    traffic.runner = restarted
    traffic.until_done(batch=1000, max_looks=10)
    assert restarted.state(canary.id).status == "promoted"
    assert len(restarted_store.transitions(canary.id)) == 3
    restarted_store.close()


def test_a_snapshot_counts_the_current_step_only(store: DecisionStore) -> None:
    canary = experiment()
    runner = CanaryRunner(store, {canary.id: canary})
    traffic = Traffic(runner, canary, CLICK_RATES["control"], seed=4)
    while not traffic.look(batch=1000):
        assert traffic.looks < 10
    now = T0 + timedelta(days=1)
    assert sum(runner.snapshot(canary.id, now).units.values()) == 0
    traffic.look(batch=500)
    snapshot = runner.snapshot(canary.id, now)
    assert sum(snapshot.units.values()) == 500
    assert snapshot.srm.expected_units == pytest.approx({"treatment": 150, "control": 350})
    assert isinstance(snapshot.primary, SequentialResult)
    assert snapshot.primary.control_units + snapshot.primary.treatment_units == 500


def test_operational_guardrails_come_from_the_decisions(store: DecisionStore) -> None:
    canary = experiment(guardrails=["p99_latency_ms", "reject_rate", "add_to_cart"])
    runner = CanaryRunner(store, {canary.id: canary})
    store.write_decisions(
        # Two images per decision, one of them rejected (the factory's default).
        [
            decision(f"c{i}", variant="control", latency_ms=100.0 + i, experiment_id=canary.id)
            for i in range(100)
        ]
        + [
            decision(f"t{i}", variant="treatment", latency_ms=300.0, experiment_id=canary.id)
            for i in range(10)
        ]
    )
    guardrails = runner.snapshot(canary.id, T0).guardrails
    # Nearest rank: the 99th of 100 control latencies.
    assert guardrails["p99_latency_ms"] == OperationalReading(control=198.0, treatment=300.0)
    reject_rate = guardrails["reject_rate"]
    assert isinstance(reject_rate, SequentialResult)
    # Images, not decisions, are the trials.
    assert (reject_rate.control_units, reject_rate.treatment_units) == (200, 20)
    assert reject_rate.difference == 0.0
    assert isinstance(guardrails["add_to_cart"], SequentialResult)


def test_a_reading_without_data_in_an_arm_waits(store: DecisionStore) -> None:
    canary = experiment(guardrails=["p99_latency_ms"])
    runner = CanaryRunner(store, {canary.id: canary})
    store.write_decisions([decision("c0", experiment_id=canary.id)])
    assert runner.snapshot(canary.id, T0).guardrails == {}  # the controller: "no data yet"


def test_only_running_canaries_are_ticked(store: DecisionStore) -> None:
    fixed = experiment(
        id="fixed", ramp=None, variants=[{"name": "control", "weight": 3}, {"name": "b"}]
    )
    draft = experiment(id="draft", status="draft", min_sample_per_variant=1)
    runner = CanaryRunner(store, {e.id: e for e in (fixed, draft)})
    assert runner.weights("fixed") == {"control": 0.75, "b": 0.25}
    assert runner.weights("draft") == {"treatment": 0.1, "control": 0.9}
    # Traffic that would move a running canary on.
    assert runner.tick(Traffic(runner, draft, CLICK_RATES["control"]).write(batch=100)) == []
    with pytest.raises(ValueError, match="no ramp"):
        runner.state("fixed")
    with pytest.raises(KeyError, match="no experiment 'unknown'"):
        runner.weights("unknown")


def test_a_look_that_lost_the_race_is_dropped(
    store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    canary = experiment(min_sample_per_variant=2)
    stores = [DecisionStore(store_url), DecisionStore(store_url)]
    stores[0].create_schema()
    mine, other = (CanaryRunner(s, {canary.id: canary}) for s in stores)
    look_at = Traffic(other, canary, CLICK_RATES["control"], seed=5).write(batch=100)
    read_units = stores[0].unit_metrics

    def other_runner_ticks_meanwhile(*args: Any, **kwargs: Any) -> Any:
        other.tick(look_at)  # enough units to advance
        return read_units(*args, **kwargs)

    monkeypatch.setattr(stores[0], "unit_metrics", other_runner_ticks_meanwhile)
    with caplog.at_level(logging.WARNING, logger="experiments.canary_runner"):
        assert mine.tick(look_at) == []
    assert "look dropped" in caplog.text
    [advance] = stores[1].transitions(canary.id)  # one step, not two
    assert (advance.from_percent, advance.to_percent) == (10, 30)
    for s in stores:
        s.close()


def test_a_history_the_ramp_cannot_explain_is_refused(
    store: DecisionStore, caplog: pytest.LogCaptureFixture
) -> None:
    edited = experiment(ramp=[20, 50])  # was [10, 30, 50] when the transition was recorded
    other = experiment(id="other", min_sample_per_variant=1)
    store.record_transition(edited.id, Transition("advance", 10, 30, "advanced", T0))
    runner = CanaryRunner(store, {e.id: e for e in (edited, other)})
    with pytest.raises(CanaryHistoryError, match="was the ramp changed while it ran"):
        runner.weights(edited.id)
    Traffic(runner, other, CLICK_RATES["control"], seed=6).look(batch=100)
    # The broken one is logged and skipped; the other still gets its look.
    assert [t.kind for t in store.transitions("other")] == ["advance"]
    assert "canary canary: not ticked" in caplog.text


def run_canaries(url: str) -> list[list[Transition]]:
    store = DecisionStore(url)
    store.create_schema()
    canaries = {
        "better": (experiment(id="better"), CLICK_RATES["better"], 0.0),
        "errors": (experiment(id="errors"), CLICK_RATES["control"], 0.10),
    }
    runner = CanaryRunner(store, {name: config for name, (config, _, _) in canaries.items()})
    for config, click_rate, error_rate in canaries.values():
        Traffic(runner, config, click_rate, error_rate, seed=7).until_done(1000, max_looks=20)
    histories = [store.transitions(name) for name in canaries]
    store.close()
    return histories


def test_sqlite_and_postgresql_decide_alike(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    sqlite_histories = run_canaries(f"sqlite:///{tmp_path / 'curator.db'}")
    postgres_histories = run_canaries(postgres_server.create_database())
    assert sqlite_histories == postgres_histories  # reasons, figures and times included
    better, errors = sqlite_histories
    assert [t.kind for t in better] == ["advance", "advance", "promote"]
    assert errors[-1].kind == "rollback"


def test_describe_is_what_get_experiments_shows(store: DecisionStore) -> None:
    experiment = experiments_from_data([{
        "id": "described", "variants": [{"name": "control"}, {"name": "treatment"}],
        "primary_metric": "click", "ramp": [10, 50], "status": "running"}])["described"]
    runner = CanaryRunner(store, {"described": experiment})
    assert runner.describe("described") == {
        "status": "ramping", "step": 0, "treatment_percent": 10, "transitions": []}
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    store.record_transition("described", Transition("rollback", 10, 0, "guardrail harmed", at))
    described = runner.describe("described")
    assert (described["status"], described["treatment_percent"]) == ("rolled_back", 0)
    assert described["transitions"] == [{"kind": "rollback", "from_percent": 10,
                                         "to_percent": 0, "reason": "guardrail harmed",
                                         "at": "2026-11-25T12:00:00+00:00"}]
