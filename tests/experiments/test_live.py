"""What the ingress uses of the experiments while serving: arms and decision rows."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from experiments.assignment import assign
from experiments.config import ExperimentConfigError, experiments_from_data
from experiments.live import Arm, LiveExperiments, decision_record

SCORER_AB = {
    "id": "scorer-ab", "variants": [{"name": "control", "scorer_card": "card-v0"},
                                    {"name": "treatment", "scorer_card": "card-v1"}],
    "primary_metric": "click", "status": "running",
}
CANARY = {
    "id": "strict-canary", "variants": [{"name": "control"},
                                        {"name": "treatment", "policy_set": "strict"}],
    "primary_metric": "click", "ramp": [5, 50], "status": "running",
}


def live(*definitions: dict, cards: tuple[str, ...] = ("card-v1", "card-v0"),
         sets: tuple[str, ...] = ("strict",)) -> LiveExperiments:
    configs = experiments_from_data(list(definitions)) if definitions else {}
    return LiveExperiments.checked(configs, cards, sets)


def test_no_running_experiment_is_the_plain_control() -> None:
    assert live().arm_for("L-1") == Arm()
    draft = {**SCORER_AB, "status": "draft"}
    assert live(draft).arm_for("L-1") == Arm()


def test_arms_follow_the_assignment_and_carry_what_the_variant_changes() -> None:
    experiments = live(SCORER_AB)
    config = experiments.running
    assert config is not None
    seen = Counter()
    for i in range(2000):
        arm = experiments.arm_for(f"L-{i}")
        expected = assign(config, f"L-{i}")
        assert (arm.variant, arm.bucket, arm.experiment_id) == (
            expected.variant, expected.bucket, "scorer-ab")
        assert arm.scorer_card == {"control": "card-v0", "treatment": "card-v1"}[arm.variant]
        seen[arm.variant] += 1
    assert 900 < seen["treatment"] < 1100


def test_canary_weights_decide_the_split() -> None:
    experiments = live(CANARY)
    at_5 = Counter(experiments.arm_for(f"L-{i}").variant for i in range(4000))
    rolled_back = experiments.with_weights({"strict-canary": {"control": 1.0, "treatment": 0.0}})
    assert 120 < at_5["treatment"] < 280  # the first ramp step, 5%
    assert {rolled_back.arm_for(f"L-{i}").variant for i in range(4000)} == {"control"}
    treated = experiments.arm_for(next(f"L-{i}" for i in range(4000)
                                       if experiments.arm_for(f"L-{i}").variant == "treatment"))
    assert treated.policy_set == "strict" and treated.scorer_card is None


@pytest.mark.parametrize(
    ("definitions", "cards", "sets", "words"),
    [
        ((SCORER_AB, {**CANARY, "id": "other"}), ("card-v0", "card-v1"), ("strict",),
         "at most one experiment runs at a time"),
        ((SCORER_AB,), ("card-v1",), (), "needs scorer card card-v0, but the graph deploys only "
                                         "card-v1"),
        ((SCORER_AB,), (), (), "deploys only no model stages"),
        ((CANARY,), ("card-v1",), (), "needs policy set strict; supplied: none"),
    ],
)
def test_what_the_graph_cannot_serve_is_refused(
    definitions: tuple[dict, ...], cards: tuple[str, ...], sets: tuple[str, ...], words: str
) -> None:
    with pytest.raises(ExperimentConfigError, match=words):
        live(*definitions, cards=cards, sets=sets)


def test_decision_record_from_an_answer() -> None:
    answer = SimpleNamespace(
        decision_id="d-1", listing_id="L-1", policy_set_version="s", policy_version="p",
        category="shoes", marketplace="UK", selection=SimpleNamespace(main_image_id="a"),
        images=[SimpleNamespace(image_id="a", action="approve", status="ok"),
                SimpleNamespace(image_id="b", action=None, status="error")],
    )
    arm = Arm("treatment", "scorer-ab", 4242, "card-v1")
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    record = decision_record(answer, arm, "card-v1", 12.5, now)
    assert (record.unit_id, record.variant, record.experiment_id, record.bucket) == (
        "L-1", "treatment", "scorer-ab", 4242)
    assert record.image_actions == {"a": "approve", "b": "error"}
    assert (record.error_count, record.main_image_id, record.latency_ms) == (1, "a", 12.5)
    assert record.created_at == now and record.scorer_version == "card-v1"
