"""Seeded simulations end to end: A/A tests watched continuously stay within alpha, and the
canary controller rolls back a worse treatment and promotes a better one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from experiments.config import load_experiments
from experiments.simulate import canary_experiment, main, simulate_aa, simulate_canary

EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "examples" / "scorer_v1_canary.yaml"


def test_aa_false_positive_rate_stays_within_alpha() -> None:
    result = simulate_aa(runs=1000, seed=0)
    assert result.looks == 100  # every 100 of 10,000 units
    assert result.allowed_rate == pytest.approx(0.05 + 3 * (0.05 * 0.95 / 1000) ** 0.5)
    assert result.false_positive_rate <= result.allowed_rate
    # The simulation can tell a test that is not valid under peeking: the fixed-horizon z-test
    # on the same looks rejects far more often than alpha.
    assert result.peeking_false_positive_rate > 2 * result.allowed_rate


@pytest.mark.parametrize("seed", range(4))
def test_a_ten_percent_worse_treatment_is_rolled_back(seed: int) -> None:
    run = simulate_canary(-0.10, seed=seed)
    assert run.state.status == "rolled_back"
    rollback = run.state.history[-1]
    assert rollback.kind == "rollback" and rollback.to_percent == 0
    assert "primary metric click is significantly worse" in rollback.reason
    assert all(t.kind == "advance" for t in run.state.history[:-1])


@pytest.mark.parametrize("seed", range(4))
def test_a_ten_percent_better_treatment_is_promoted(seed: int) -> None:
    run = simulate_canary(0.10, seed=seed)
    assert run.state.status == "promoted"
    assert [t.to_percent for t in run.state.history] == [25, 50, 100]
    # Every step waited for its minimum sample in the smaller arm: 10,000 units at 5% takes
    # about 200,000 arrivals, 25% about 40,000 and 50% about 20,000.
    assert 240_000 <= run.units <= 320_000


def test_simulated_canary_is_deterministic() -> None:
    assert simulate_canary(-0.10, seed=7) == simulate_canary(-0.10, seed=7)


def test_the_example_experiment_can_be_simulated() -> None:
    (experiment,) = load_experiments(EXAMPLE).values()
    assert experiment.ramp != canary_experiment().ramp
    run = simulate_canary(-0.5, experiment=experiment, seed=0)
    assert run.state.status == "rolled_back"
    assert run.state.history[-1].from_percent == 1  # caught at the first step


def test_command_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="experiments.simulate"):
        assert main(["aa", "--runs", "100", "--units", "2000"]) == 0
        assert main(["canary", "--effect", "-0.10", "--experiment", str(EXAMPLE)]) == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("100 A/A runs, 20 looks each:") for m in messages)
    assert any(m.startswith("effect -10%: rolled_back, treatment at 0%") for m in messages)
