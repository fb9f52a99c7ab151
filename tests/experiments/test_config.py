"""Experiment definitions: the example file, defaults, and an error naming the field for every
way a definition can be wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from experiments.config import (
    ExperimentConfig,
    ExperimentConfigError,
    experiments_from_data,
    harmful_direction,
    load_experiments,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "examples" / "scorer_v1_canary.yaml"


def minimal(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "exp-1",
        "primary_metric": "click",
        "variants": [{"name": "control"}, {"name": "treatment"}],
    }
    data.update(fields)
    return data


def test_the_example_canary_loads() -> None:
    (experiment,) = load_experiments(EXAMPLE).values()
    assert experiment.id == "scorer-v1-canary"
    assert experiment.salt == "scorer-v1-canary-2026-11"
    assert experiment.status == "running"
    assert [v.scorer_card for v in experiment.variants] == ["card-v0", "card-v1"]
    assert experiment.primary_metric == "click"
    assert experiment.ramp == (1, 5, 25, 50)
    assert experiment.normalized_weights() == {"treatment": 0.01, "control": 0.99}
    assert experiment.normalized_weights(25) == {"treatment": 0.25, "control": 0.75}
    guardrails = {g.metric: (g.direction, g.tolerance) for g in experiment.guardrails}
    assert guardrails == {
        "add_to_cart": ("decrease_is_bad", None),
        "purchase": ("decrease_is_bad", None),
        "return": ("increase_is_bad", None),
        "error_rate": ("increase_is_bad", 0.005),
        "p99_latency_ms": ("increase_is_bad", 40),
        "reject_rate": ("increase_is_bad", 0.02),  # the default tolerance
    }


def test_a_definition_survives_a_round_trip_through_a_user_config() -> None:
    (experiment,) = load_experiments(EXAMPLE).values()
    user_config = {"experiments": [experiment.model_dump(mode="json")]}
    assert experiments_from_data(user_config) == {experiment.id: experiment}


def test_defaults() -> None:
    experiment = ExperimentConfig.model_validate(minimal())
    assert experiment.salt == "exp-1"
    assert experiment.unit == "listing_id"
    assert experiment.alpha == 0.05
    assert experiment.sequential_n_star == 5000
    assert experiment.status == "draft"
    assert experiment.normalized_weights() == {"control": 0.5, "treatment": 0.5}
    assert experiment.treatment_names == ("treatment",)


def test_weights_are_normalised() -> None:
    experiment = ExperimentConfig.model_validate(
        minimal(
            variants=[
                {"name": "control", "weight": 3},
                {"name": "a", "weight": 1},
                {"name": "b", "weight": 0},
            ]
        )
    )
    assert experiment.normalized_weights() == {"control": 0.75, "a": 0.25, "b": 0.0}


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("click", "decrease_is_bad"),
        ("purchase_value", "decrease_is_bad"),
        ("return", "increase_is_bad"),
        ("error_rate", "increase_is_bad"),
        ("p99_latency_ms", "increase_is_bad"),
    ],
)
def test_harmful_direction(metric: str, direction: str) -> None:
    assert harmful_direction(metric) == direction


def test_documents_are_one_experiment_a_list_or_a_mapping_of_experiments() -> None:
    one = yaml.safe_dump(minimal())
    many = yaml.safe_dump([minimal(id="a"), minimal(id="b")])
    keyed = yaml.safe_dump({"experiments": [minimal(id="a")]})
    assert list(load_experiments(one)) == ["exp-1"]
    assert list(load_experiments(many)) == ["a", "b"]
    assert list(load_experiments(keyed)) == ["a"]


def test_definitions_are_frozen() -> None:
    experiment = ExperimentConfig.model_validate(minimal())
    with pytest.raises(ValidationError):
        experiment.alpha = 0.1  # type: ignore[misc]


def _without_control() -> dict[str, Any]:
    return minimal(variants=[{"name": "a"}, {"name": "b"}])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            _without_control(),
            "variants: exactly one variant must be named 'control'",
            id="no-control",
        ),
        pytest.param(
            minimal(variants=[{"name": "control"}, {"name": "control"}]),
            "names must be unique",
            id="duplicate-names",
        ),
        pytest.param(minimal(variants=[{"name": "control"}]), "variants: ", id="one-variant"),
        pytest.param(
            minimal(variants=[{"name": "control"}, {"name": "t", "weight": -1}]),
            "variants.1.weight: Input should be greater than or equal to 0",
            id="negative-weight",
        ),
        pytest.param(
            minimal(variants=[{"name": "control", "weight": 0}, {"name": "t", "weight": 0}]),
            "at least one weight must be positive",
            id="all-weights-zero",
        ),
        pytest.param(
            minimal(variants=[{"name": "control", "colour": "red"}, {"name": "t"}]),
            "variants.0.colour: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            minimal(primary_metric="clicks"),
            "primary_metric: unknown metric 'clicks'",
            id="unknown-metric",
        ),
        pytest.param(
            minimal(primary_metric="error_rate"),
            "primary_metric: 'error_rate' is an operational guardrail",
            id="operational-primary",
        ),
        pytest.param(
            minimal(guardrails=[{"metric": "click", "tolerance": 0.1}]),
            "guardrails.0: tolerance: only operational",
            id="tolerance",
        ),
        pytest.param(
            minimal(guardrails=["return", "return"]),
            "guardrails: each metric at most once",
            id="duplicate-guardrail",
        ),
        pytest.param(
            minimal(guardrails=[{"metric": "click", "direction": "up"}]),
            "guardrails.0.direction",
            id="bad-direction",
        ),
        pytest.param(
            minimal(ramp=[5, 1]), "ramp: steps must strictly increase", id="ramp-decreasing"
        ),
        pytest.param(minimal(ramp=[0, 5]), "ramp: every step is a percentage", id="ramp-zero"),
        pytest.param(minimal(ramp=[50, 150]), "every step is a percentage", id="ramp-above-100"),
        pytest.param(minimal(ramp=[100]), "a ramp needs a step below 100", id="ramp-only-100"),
        pytest.param(
            minimal(ramp=[1, 5], variants=[{"name": "control"}, {"name": "a"}, {"name": "b"}]),
            "exactly two variants",
            id="ramp-three-variants",
        ),
        pytest.param(
            minimal(ramp=[1, 5], variants=[{"name": "control", "weight": 9}, {"name": "t"}]),
            "takes its weights from ramp; remove weight from ['control']",
            id="ramp-with-weights",
        ),
        pytest.param(minimal(alpha=0.7), "alpha: Input should be less than 0.5", id="alpha"),
        pytest.param(minimal(min_sample_per_variant=0), "min_sample_per_variant", id="min-sample"),
        pytest.param(minimal(id="has space"), "id: String should match pattern", id="id"),
    ],
)
def test_invalid_definitions_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ExperimentConfigError) as raised:
        experiments_from_data(data, source="exp.yaml")
    text = str(raised.value)
    assert text.startswith(f"exp.yaml: experiment '{data['id']}': ")
    assert message in text


def test_a_second_experiment_with_the_same_id_is_refused() -> None:
    with pytest.raises(ExperimentConfigError, match="experiment 'a': id is already used"):
        experiments_from_data([minimal(id="a"), minimal(id="a")])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("id: [unclosed", "not valid YAML", id="not-yaml"),
        pytest.param("", "got NoneType", id="empty"),
        pytest.param("experiments/examples/x.yaml", "pass a Path to read a file", id="a-path"),
        pytest.param(
            "experiments: []\nother: 1\n",
            "unexpected keys beside experiments",
            id="extra-top-level-key",
        ),
        pytest.param("- 3\n", "experiment #1: expected a mapping, got int", id="not-a-mapping"),
    ],
)
def test_invalid_documents(text: str, message: str) -> None:
    with pytest.raises(ExperimentConfigError, match=r"^<text>: ") as raised:
        load_experiments(text)
    assert message in str(raised.value)
    assert raised.value.code == "invalid_experiment"


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ExperimentConfigError, match=r"missing\.yaml: cannot read"):
        load_experiments(missing)


def test_an_invalid_variant_is_reported_once() -> None:
    data = minimal(variants=[{"name": "control"}, {"name": "t", "weight": -1}])
    with pytest.raises(ExperimentConfigError) as raised:
        experiments_from_data(data, source="exp.yaml")
    # Not also "variants: Tuple should have at least 2 items" for the list it left behind.
    assert str(raised.value) == (
        "exp.yaml: experiment 'exp-1': variants.1.weight: "
        "Input should be greater than or equal to 0"
    )
