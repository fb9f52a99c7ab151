"""Evaluation of conditions, verdicts and actions, on small policies built in the test."""

from __future__ import annotations

from typing import Any

import pytest

from curator.contracts.errors import ImageError
from rules.evaluate import ImageVerdict, NotEvaluated, evaluate, strongest_action
from rules.schema import Policy


def policy(*rules: dict[str, Any]) -> Policy:
    return Policy.model_validate({"policy": "under-test", "rules": list(rules)})


def rule(rule_id: str, require: dict[str, Any], severity: str = "block", **extra: Any
         ) -> dict[str, Any]:
    return {"id": rule_id, "description": "test", "applies_to": "any", "require": require,
            "severity": severity, **extra}


WHITE = {"attribute": "background.white_fraction", "op": ">=", "value": 0.97}
BORDER = {"attribute": "frame.border", "op": "==", "value": False}
SIZE = {"attribute": "file.longest_side", "op": ">=", "value": 1000}
MODE = {"attribute": "file.color_mode", "in": ["RGB", "CMYK"]}

PRECEDENCE = policy(
    rule("white", WHITE, "block"),
    rule("border", BORDER, "block", action="review"),
    rule("size", SIZE, "warn"),
    rule("mode", MODE, "info", message="mode {measured}"),
)
CLEAN = {
    "background.white_fraction": 1.0,
    "frame.border": False,
    "file.longest_side": 2000,
    "file.color_mode": "RGB",
}


@pytest.mark.parametrize(
    ("change", "action", "violated"),
    [
        ({}, "approve", []),
        ({"file.color_mode": "RGBA"}, "approve", ["mode"]),
        ({"file.longest_side": 900}, "review", ["size"]),
        ({"frame.border": True}, "review", ["border"]),
        ({"file.longest_side": 900, "file.color_mode": "L"}, "review", ["size", "mode"]),
        ({"background.white_fraction": 0.5}, "reject", ["white"]),
        (
            {"background.white_fraction": 0.5, "frame.border": True, "file.longest_side": 900,
             "file.color_mode": "P"},
            "reject",
            ["white", "border", "size", "mode"],
        ),
    ],
    ids=["none-approve", "info-approve", "warn-review", "block-review-action",
         "warn-beats-info", "block-reject", "reject-beats-all"],
)
def test_action_precedence(change: dict[str, Any], action: str, violated: list[str]) -> None:
    verdict = evaluate(PRECEDENCE, {**CLEAN, **change}, "main")
    assert verdict.action == action
    assert [v.rule_id for v in verdict.violations] == violated
    assert verdict.compliant == (action == "approve")


def test_info_violations_become_notes() -> None:
    verdict = evaluate(PRECEDENCE, {**CLEAN, "file.color_mode": "RGBA"}, "main")
    assert verdict.notes == ("mode RGBA",)
    assert verdict.action == "approve"


def test_default_actions_follow_severity() -> None:
    actions = {r.id: r.action for r in PRECEDENCE.rules}
    assert actions == {"white": "reject", "border": "review", "size": "review", "mode": "approve"}


def test_strongest_action() -> None:
    assert strongest_action([]) == "approve"
    assert strongest_action(["approve", "review"]) == "review"
    assert strongest_action(["review", "reject", "approve"]) == "reject"


def test_verdict_carries_policy_identity() -> None:
    verdict = evaluate(PRECEDENCE, CLEAN, "alternate")
    assert (verdict.policy_id, verdict.policy_version, verdict.role) == (
        "under-test", PRECEDENCE.version, "alternate"
    )
    assert verdict.passed == ("white", "border", "size", "mode")


@pytest.mark.parametrize("absent", [None, "missing"], ids=["null", "missing"])
def test_missing_attribute_is_not_evaluated(absent: str | None) -> None:
    attributes: dict[str, Any] = dict(CLEAN)
    if absent is None:
        attributes["background.white_fraction"] = None
    else:
        del attributes["background.white_fraction"]
    verdict = evaluate(PRECEDENCE, attributes, "main")
    assert verdict.not_evaluated == (
        NotEvaluated("white", "block", ("background.white_fraction",)),
    )
    assert verdict.violations == ()
    assert verdict.action == "approve"
    assert "white" not in verdict.passed


FILL_98 = {"attribute": "composition.fill_ratio", "op": ">=", "value": 0.98}
NO_EDGE = {"attribute": "composition.touches_edge", "op": "==", "value": False}
NOT_CROPPED = policy(rule("crop", {"any": [FILL_98, NO_EDGE]}))
BOTH = policy(rule("both", {"all": [FILL_98, NO_EDGE]}))


@pytest.mark.parametrize(
    ("rules", "attributes", "outcome"),
    [
        (NOT_CROPPED, {"composition.fill_ratio": 0.99}, "passed"),
        (NOT_CROPPED, {"composition.touches_edge": False}, "passed"),
        (NOT_CROPPED, {"composition.fill_ratio": 0.5}, ("composition.touches_edge",)),
        (NOT_CROPPED, {}, ("composition.fill_ratio", "composition.touches_edge")),
        (BOTH, {"composition.fill_ratio": 0.5}, "violated"),
        (BOTH, {"composition.fill_ratio": 0.99}, ("composition.touches_edge",)),
        (BOTH, {"composition.touches_edge": True}, "violated"),
    ],
    ids=["any-true-decides", "any-true-decides-2", "any-unknown", "any-all-missing",
         "all-false-decides", "all-unknown", "all-false-decides-2"],
)
def test_unknown_only_matters_when_it_could_change_the_outcome(
    rules: Policy, attributes: dict[str, Any], outcome: Any
) -> None:
    verdict = evaluate(rules, attributes, "main")
    if outcome == "passed":
        assert verdict.passed and not verdict.violations and not verdict.not_evaluated
    elif outcome == "violated":
        assert len(verdict.violations) == 1 and not verdict.not_evaluated
    else:
        assert not verdict.violations
        (not_evaluated,) = verdict.not_evaluated
        assert not_evaluated.missing == outcome


def test_any_reports_its_first_failing_comparison() -> None:
    verdict = evaluate(NOT_CROPPED, {"composition.fill_ratio": 0.9,
                                     "composition.touches_edge": True}, "main")
    (violation,) = verdict.violations
    assert (violation.attribute, violation.measured, violation.op, violation.threshold) == (
        "composition.fill_ratio", 0.9, ">=", 0.98
    )


def test_all_reports_the_comparison_that_failed() -> None:
    verdict = evaluate(BOTH, {"composition.fill_ratio": 0.99,
                              "composition.touches_edge": True}, "main")
    (violation,) = verdict.violations
    assert (violation.attribute, violation.measured, violation.op, violation.threshold) == (
        "composition.touches_edge", True, "==", False
    )


RANGE = {"attribute": "file.longest_side", "between": [500, 10000]}


@pytest.mark.parametrize(
    ("require", "measured", "op", "threshold"),
    [
        (RANGE, 499, ">=", 500),
        (RANGE, 10001, "<=", 10000),
        ({"not": RANGE}, 700, "not between", (500, 10000)),
        ({"not": SIZE}, 1200, "<", 1000),
        ({"not": {"not": SIZE}}, 999, ">=", 1000),
        ({"attribute": "file.longest_side", "in": [800, 1600]}, 1000, "in", (800, 1600)),
        ({"attribute": "file.longest_side", "not_in": [800, 1600]}, 800, "not in", (800, 1600)),
        ({"not": {"attribute": "file.longest_side", "in": [800]}}, 800, "not in", (800,)),
        ({"not": {"all": [SIZE, {"attribute": "file.longest_side", "op": "<", "value": 2000}]}},
         1500, "<", 1000),
    ],
    ids=["below-range", "above-range", "not-between", "not-ge", "double-not", "in", "not-in",
         "not-of-in", "de-morgan"],
)
def test_violation_reports_the_requirement_that_failed(
    require: dict[str, Any], measured: int, op: str, threshold: Any
) -> None:
    rules = policy(rule("r", require, message="{measured} {op} {threshold}"))
    (violation,) = evaluate(rules, {"file.longest_side": measured}, "main").violations
    assert (violation.measured, violation.op, violation.threshold) == (measured, op, threshold)
    shown = ", ".join(map(str, threshold)) if op in ("in", "not in") else threshold
    if op == "not between":
        shown = "500 to 10000"
    assert violation.message == f"{measured} {op} {shown}"


@pytest.mark.parametrize(
    ("require", "measured"),
    [
        (RANGE, 500),
        (RANGE, 10000),
        ({"not": RANGE}, 499),
        ({"not": SIZE}, 999),
        ({"attribute": "file.longest_side", "in": [800, 1600]}, 1600),
        ({"attribute": "file.longest_side", "not_in": [800, 1600]}, 801),
    ],
    ids=["range-low-edge", "range-high-edge", "not-between", "not-ge", "in", "not-in"],
)
def test_requirement_holds(require: dict[str, Any], measured: int) -> None:
    verdict = evaluate(policy(rule("r", require)), {"file.longest_side": measured}, "main")
    assert verdict.passed == ("r",)
    assert verdict.violations == ()


def test_rules_apply_by_role() -> None:
    rules = policy(
        {**rule("main-only", SIZE), "applies_to": "main"},
        {**rule("alt-only", SIZE), "applies_to": "alternate"},
        rule("both", SIZE),
    )
    small = {"file.longest_side": 10}
    assert [v.rule_id for v in evaluate(rules, small, "main").violations] == ["main-only", "both"]
    assert [v.rule_id for v in evaluate(rules, small, "alternate").violations] == [
        "alt-only", "both"
    ]


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role must be one of main, alternate"):
        evaluate(PRECEDENCE, CLEAN, "hero")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value"),
    [("background.white_fraction", "0.99"), ("frame.border", 0), ("file.longest_side", 99.5),
     ("file.longest_side", True)],
    ids=["str-for-float", "int-for-bool", "float-for-int", "bool-for-int"],
)
def test_attribute_of_the_wrong_kind_is_an_image_error(name: str, value: Any) -> None:
    with pytest.raises(ImageError) as info:
        evaluate(PRECEDENCE, {**CLEAN, name: value}, "main")
    assert info.value.field == name
    assert info.value.code == "invalid_attribute"


def test_int_measured_for_a_float_attribute_is_fine() -> None:
    verdict = evaluate(PRECEDENCE, {**CLEAN, "background.white_fraction": 1}, "main")
    assert "white" in verdict.passed


def test_verdict_is_frozen() -> None:
    verdict = evaluate(PRECEDENCE, CLEAN, "main")
    assert isinstance(verdict, ImageVerdict)
    with pytest.raises(AttributeError):
        verdict.action = "reject"  # type: ignore[misc]
