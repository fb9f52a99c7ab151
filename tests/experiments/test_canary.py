"""The canary controller's rules, one snapshot at a time: advance, hold, roll back, promote."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from experiments.canary import (
    CanaryController,
    CanaryState,
    GuardrailEvidence,
    OperationalReading,
    Snapshot,
)
from experiments.config import ExperimentConfig
from experiments.sequential import SequentialResult
from experiments.stats import Interval, SrmResult, sample_ratio_mismatch

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EXPERIMENT = ExperimentConfig.model_validate(
    {
        "id": "scorer-v1-canary",
        "variants": [
            {"name": "control", "scorer_card": "card-v0"},
            {"name": "treatment", "scorer_card": "card-v1"},
        ],
        "primary_metric": "click",
        "guardrails": [
            "add_to_cart",
            "return",
            "error_rate",
            {"metric": "p99_latency_ms", "tolerance": 50},
        ],
        "min_sample_per_variant": 1000,
        "ramp": [1, 5, 25, 50, 100],
        "status": "running",
    }
)
CONTROLLER = CanaryController(EXPERIMENT)


def sequential(lower: float = -0.01, upper: float = 0.01, p_value: float = 0.5) -> SequentialResult:
    return SequentialResult(
        "ok", 0.05, 5000, 5000, (lower + upper) / 2, p_value, Interval(lower, upper), None, None
    )


NEUTRAL: dict[str, GuardrailEvidence] = {
    "add_to_cart": sequential(),
    "return": sequential(),
    "error_rate": sequential(-0.001, 0.001),
    "p99_latency_ms": OperationalReading(control=180.0, treatment=185.0),
}


def snapshot(
    state: CanaryState,
    units: Mapping[str, int] | None = None,
    primary: SequentialResult | None = None,
    srm: SrmResult | None = None,
    guardrails: Mapping[str, GuardrailEvidence] | None = None,
) -> Snapshot:
    """A healthy snapshot of the state's step unless told otherwise."""
    weights = CONTROLLER.weights(state)
    if units is None:  # enough units in the smaller arm, split as the weights say
        total = round(1000 / min(weights.values()))
        units = {name: round(total * share) for name, share in weights.items()}
    return Snapshot(
        at=AT,
        units=units,
        srm=srm or sample_ratio_mismatch(units, weights),
        primary=primary or sequential(),
        guardrails={**NEUTRAL, **(guardrails or {})},
    )


def test_the_ramp_and_its_weights() -> None:
    state = CONTROLLER.start()
    assert state == CanaryState("scorer-v1-canary", step=0, status="ramping", history=())
    # The trailing 100 of the ramp is the promotion: no control is left to measure at 100%.
    assert CONTROLLER.steps == (1, 5, 25, 50)
    assert CONTROLLER.weights(state) == {"treatment": 0.01, "control": 0.99}
    promoted = CanaryState("scorer-v1-canary", 3, "promoted")
    rolled_back = CanaryState("scorer-v1-canary", 2, "rolled_back")
    assert CONTROLLER.weights(promoted) == {"treatment": 1.0, "control": 0.0}
    assert CONTROLLER.weights(rolled_back) == {"treatment": 0.0, "control": 1.0}


def test_an_experiment_without_a_ramp_is_not_a_canary() -> None:
    plain = EXPERIMENT.model_copy(update={"ramp": None})
    with pytest.raises(ValueError, match="no ramp"):
        CanaryController(plain)


def test_advances_when_sample_srm_and_guardrails_allow() -> None:
    state = CONTROLLER.start()
    transition = CONTROLLER.decide(state, snapshot(state))
    assert transition is not None
    assert (transition.kind, transition.from_percent, transition.to_percent) == ("advance", 1, 5)
    assert transition.at == AT
    assert transition.reason.startswith(
        "advanced from 1% to 5%: every variant has at least "
        "1,000 units, the split passes the SRM check"
    )
    following = CONTROLLER.apply(state, transition)
    assert (following.step, following.status, following.history) == (1, "ramping", (transition,))
    assert CONTROLLER.weights(following) == {"treatment": 0.05, "control": 0.95}


@pytest.mark.parametrize(
    ("change", "blocker"),
    [
        pytest.param(
            {"units": {"control": 99_000, "treatment": 999}},
            "treatment has 999 of the 1,000 units a step needs",
            id="too-few-units",
        ),
        pytest.param(
            {
                "srm": SrmResult(
                    "ok", 40.0, 1e-9, {"control": 99_000, "treatment": 1000}, mismatch=True
                )
            },
            "sample ratio mismatch",
            id="srm-mismatch",
        ),
        pytest.param(
            {"srm": SrmResult("no_units", None, None, {}, mismatch=False)},
            "the split cannot be checked yet (no_units)",
            id="srm-unknown",
        ),
        pytest.param(
            {
                "primary": SequentialResult(
                    "zero_variance", 0.05, 99_000, 1000, 0.0, None, None, None, None
                )
            },
            "primary metric click is not measurable yet (zero_variance)",
            id="primary-unmeasured",
        ),
    ],
)
def test_holds_while_something_blocks(change: dict, blocker: str) -> None:
    state = CONTROLLER.start()
    current = snapshot(state, **change)
    assert CONTROLLER.decide(state, current) is None
    health = CONTROLLER.assess(current)
    assert health.harms == ()
    assert any(blocker in reason for reason in health.blockers), health.blockers


def test_holds_without_evidence_for_a_guardrail() -> None:
    state = CONTROLLER.start()
    current = snapshot(state)
    current = Snapshot(
        current.at,
        current.units,
        current.srm,
        current.primary,
        {k: v for k, v in current.guardrails.items() if k != "return"},
    )
    assert CONTROLLER.decide(state, current) is None
    assert CONTROLLER.assess(current).blockers == ("no data yet for guardrail return",)


@pytest.mark.parametrize(
    ("guardrails", "reason"),
    [
        pytest.param(
            {"add_to_cart": sequential(-0.02, -0.001, 0.01)},
            "guardrail add_to_cart is harmed: treatment - control = -0.0105",
            id="fewer-carts",
        ),
        pytest.param(
            {"return": sequential(0.001, 0.004, 0.02)},
            "guardrail return is harmed",
            id="more-returns",
        ),
        pytest.param(
            {"error_rate": sequential(0.006, 0.03, 0.001)},
            "guardrail error_rate is harmed",
            id="errors-beyond-tolerance",
        ),
        pytest.param(
            {"p99_latency_ms": OperationalReading(180.0, 240.0)},
            "guardrail p99_latency_ms is harmed: treatment 240 against control 180, "
            "beyond the tolerance of 50",
            id="slower",
        ),
    ],
)
def test_rolls_back_at_once_when_a_guardrail_is_harmed(
    guardrails: dict[str, GuardrailEvidence], reason: str
) -> None:
    state = CONTROLLER.start()
    # Even with far too few units to advance: harm needs no minimum sample.
    current = snapshot(state, units={"control": 990, "treatment": 10}, guardrails=guardrails)
    transition = CONTROLLER.decide(state, current)
    assert transition is not None
    assert (transition.kind, transition.from_percent, transition.to_percent) == ("rollback", 1, 0)
    assert transition.reason.startswith("rolled back from 1%: ")
    assert reason in transition.reason
    rolled_back = CONTROLLER.apply(state, transition)
    assert rolled_back.status == "rolled_back"
    assert CONTROLLER.weights(rolled_back) == {"treatment": 0.0, "control": 1.0}
    assert CONTROLLER.decide(rolled_back, current) is None  # final


@pytest.mark.parametrize(
    "guardrails",
    [
        pytest.param({"add_to_cart": sequential(0.001, 0.02, 0.01)}, id="more-carts"),
        pytest.param({"return": sequential(-0.004, -0.001, 0.01)}, id="fewer-returns"),
        pytest.param({"error_rate": sequential(0.001, 0.004, 0.01)}, id="errors-within-tolerance"),
        pytest.param({"p99_latency_ms": OperationalReading(180.0, 225.0)}, id="slower-within"),
    ],
)
def test_changes_on_the_good_side_or_within_tolerance_are_not_harm(
    guardrails: dict[str, GuardrailEvidence],
) -> None:
    state = CONTROLLER.start()
    transition = CONTROLLER.decide(state, snapshot(state, guardrails=guardrails))
    assert transition is not None and transition.kind == "advance"


def test_rolls_back_when_the_primary_is_significantly_worse() -> None:
    state = CONTROLLER.start()
    transition = CONTROLLER.decide(state, snapshot(state, primary=sequential(-0.03, -0.002, 0.01)))
    assert transition is not None and transition.kind == "rollback"
    assert "primary metric click is significantly worse" in transition.reason


def test_a_significantly_better_primary_is_not_a_rollback() -> None:
    state = CONTROLLER.start()
    transition = CONTROLLER.decide(state, snapshot(state, primary=sequential(0.002, 0.03, 0.01)))
    assert transition is not None and transition.kind == "advance"


def test_walks_the_ramp_and_promotes_after_the_last_step() -> None:
    state = CONTROLLER.start()
    served = [CONTROLLER.weights(state)["treatment"]]
    while state.status == "ramping":
        transition = CONTROLLER.decide(state, snapshot(state))
        assert transition is not None
        state = CONTROLLER.apply(state, transition)
        served.append(CONTROLLER.weights(state)["treatment"])
    assert served == [0.01, 0.05, 0.25, 0.5, 1.0]
    assert [t.kind for t in state.history] == ["advance"] * 3 + ["promote"]
    promotion = state.history[-1]
    assert (promotion.from_percent, promotion.to_percent) == (50, 100)
    assert promotion.reason.startswith("promoted to 100% after the last step (50%): ")
    assert state.status == "promoted"
    assert CONTROLLER.decide(state, snapshot(state, units={"treatment": 5000})) is None


def test_a_ramp_without_100_promotes_after_its_last_step() -> None:
    controller = CanaryController(EXPERIMENT.model_copy(update={"ramp": (10.0,)}))
    state = controller.start()
    current = snapshot(
        state,
        units={"control": 9000, "treatment": 1000},
        srm=SrmResult("ok", 0.0, 1.0, {}, mismatch=False),
    )
    transition = controller.decide(state, current)
    assert transition is not None
    assert (transition.kind, transition.to_percent) == ("promote", 100)
