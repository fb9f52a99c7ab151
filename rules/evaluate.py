"""Evaluate a policy on one image's attributes: violations, rules not evaluated, and the action.

Conditions are evaluated in three-valued (Kleene) logic: a comparison over an attribute that is
missing or null is *unknown*. A rule whose requirement is unknown is "not evaluated" and reported
with the attributes it lacked; it is never a violation, because a stage that did not run says
nothing about the image. An unknown part that cannot change the outcome does not matter:
`any: [fill_ratio >= 0.98, touches_edge == false]` holds when fill_ratio is 0.99 even without
touches_edge.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from curator.contracts import vocabulary
from curator.contracts.errors import ImageError
from curator.contracts.vocabulary import AttributeValue
from rules.conditions import (
    AllOf,
    AnyOf,
    Between,
    Comparison,
    Leaf,
    Not,
    Threshold,
    display_threshold,
    failure_shapes,
)
from rules.schema import ACTION_PRECEDENCE, Action, Concern, FixRef, Policy, Rule, Severity

Role = Literal["main", "alternate"]
ROLES: tuple[Role, ...] = ("main", "alternate")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Violation:
    """A rule whose requirement does not hold, with the comparison that failed first."""

    rule_id: str
    severity: Severity
    action: Action
    attribute: str
    measured: AttributeValue
    op: str  # the requirement that failed: ">=", "in", "not between", ...
    threshold: Threshold
    message: str
    fix: FixRef | None = None  # with action "fix": the fix that should resolve it
    otherwise: Action | None = None  # with action "fix": the action if the fix cannot
    concerns: Concern = "content"  # "file": about the upload (size, format), not the picture


@dataclass(frozen=True)
class NotEvaluated:
    """A rule that could not be decided: attributes it depends on are missing or null."""

    rule_id: str
    severity: Severity
    missing: tuple[str, ...]


@dataclass(frozen=True)
class ImageVerdict:
    policy_id: str
    policy_version: str
    role: Role
    action: Action  # reject > review > approve over the violations' actions
    violations: tuple[Violation, ...] = ()
    not_evaluated: tuple[NotEvaluated, ...] = ()
    passed: tuple[str, ...] = ()  # ids of the rules that applied and held

    @property
    def compliant(self) -> bool:
        """Acceptable in this role as it is (info notes allowed)."""
        return self.action == "approve"

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(v.message for v in self.violations if v.severity == "info")

    @property
    def fixes(self) -> tuple[FixRef, ...]:
        """The distinct fixes the violations call for, in rule order."""
        found: list[FixRef] = []
        for violation in self.violations:
            if violation.fix is not None and violation.fix not in found:
                found.append(violation.fix)
        return tuple(found)

    @property
    def fixable(self) -> bool:
        """Every violation that holds the image back calls for a fix."""
        return self.action == "fix"

    def without_fixes(self) -> ImageVerdict:
        """The verdict when the fixes cannot be applied: each fix falls back to `otherwise`."""
        violations = tuple(
            replace(v, action=v.otherwise, fix=None, otherwise=None)
            if v.action == "fix" and v.otherwise is not None else v
            for v in self.violations
        )
        return replace(self, violations=violations,
                       action=strongest_action(v.action for v in violations))


@dataclass(frozen=True)
class _Failure:
    attribute: str
    measured: AttributeValue
    op: str
    threshold: Threshold


@dataclass(frozen=True)
class _Outcome:
    holds: bool | None  # None: unknown
    failure: _Failure | None = None  # the first failing comparison, when holds is False
    missing: tuple[str, ...] = field(default=())


def evaluate(policy: Policy, attributes: Mapping[str, AttributeValue], role: Role) -> ImageVerdict:
    """Apply the rules of `policy` that concern `role` ("main" or "alternate") to one image."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    violations: list[Violation] = []
    not_evaluated: list[NotEvaluated] = []
    passed: list[str] = []
    for rule in policy.rules_for(role):
        outcome = _evaluate(rule.require, attributes, negated=False)
        if outcome.holds is None:
            not_evaluated.append(NotEvaluated(rule.id, rule.severity, outcome.missing))
        elif outcome.holds:
            passed.append(rule.id)
        else:
            assert outcome.failure is not None  # a false outcome always carries its failure
            violations.append(_violation(rule, outcome.failure))
    return ImageVerdict(
        policy_id=policy.id,
        policy_version=policy.version,
        role=role,
        action=strongest_action(v.action for v in violations),
        violations=tuple(violations),
        not_evaluated=tuple(not_evaluated),
        passed=tuple(passed),
    )


def strongest_action(actions: Iterable[Action]) -> Action:
    """reject > review > fix > approve; approve when there is none."""
    present = set(actions)
    return next((action for action in ACTION_PRECEDENCE if action in present), "approve")


def _violation(rule: Rule, failure: _Failure) -> Violation:
    message = rule.message.format(
        measured=failure.measured,
        threshold=display_threshold(failure.op, failure.threshold),
        op=failure.op,
        attribute=failure.attribute,
    )
    return Violation(
        rule_id=rule.id,
        severity=rule.severity,
        action=rule.action,
        attribute=failure.attribute,
        measured=failure.measured,
        op=failure.op,
        threshold=failure.threshold,
        message=message,
        fix=rule.fix,
        otherwise=rule.otherwise,
        concerns=rule.concerns,
    )


def _evaluate(condition: Any, attributes: Mapping[str, AttributeValue], negated: bool) -> _Outcome:
    """`negated` pushes a `not` down to the comparisons (De Morgan), so that a violation always
    reports the requirement that actually failed: `not: {touches_edge == true}` fails as
    `touches_edge != true`."""
    if isinstance(condition, Not):
        return _evaluate(condition.not_, attributes, not negated)
    if isinstance(condition, AllOf | AnyOf):
        children = condition.all_ if isinstance(condition, AllOf) else condition.any_
        conjunction = isinstance(condition, AllOf) != negated
        outcomes = (_evaluate(child, attributes, negated) for child in children)
        return _conjoin(outcomes) if conjunction else _disjoin(list(outcomes))
    return _evaluate_leaf(condition, attributes, negated)


def _conjoin(outcomes: Iterable[_Outcome]) -> _Outcome:
    missing: list[str] = []
    for outcome in outcomes:
        if outcome.holds is False:
            return outcome  # decided: unknown siblings cannot make it hold
        if outcome.holds is None:
            missing.extend(name for name in outcome.missing if name not in missing)
    return _Outcome(None, missing=tuple(missing)) if missing else _Outcome(True)


def _disjoin(outcomes: list[_Outcome]) -> _Outcome:
    if any(outcome.holds for outcome in outcomes):
        return _Outcome(True)
    missing: list[str] = []
    for outcome in outcomes:
        missing.extend(name for name in outcome.missing if name not in missing)
    if missing:
        return _Outcome(None, missing=tuple(missing))
    return outcomes[0]  # every branch failed: report the first


def _evaluate_leaf(leaf: Leaf, attributes: Mapping[str, AttributeValue], negated: bool) -> _Outcome:
    measured = attributes.get(leaf.attribute)
    if measured is None:
        return _Outcome(None, missing=(leaf.attribute,))
    _check_kind(leaf.attribute, measured)
    if _holds(leaf, measured) != negated:
        return _Outcome(True)
    shapes = failure_shapes(leaf, negated)
    op, threshold = shapes[0]
    # A failed range reports the bound it crossed: (">=", lo) below it, ("<=", hi) above it.
    if len(shapes) == 2 and _COMPARE[op](measured, threshold):
        op, threshold = shapes[1]
    return _Outcome(False, failure=_Failure(leaf.attribute, measured, op, threshold))


def _holds(leaf: Leaf, measured: Any) -> bool:
    if isinstance(leaf, Comparison):
        return _COMPARE[leaf.op](measured, leaf.value)
    if isinstance(leaf, Between):
        return bool(leaf.between[0] <= measured <= leaf.between[1])
    return (measured in leaf.values) == (leaf.in_ is not None)


def _check_kind(name: str, value: AttributeValue) -> None:
    """A detector that produced a value of the wrong kind is a bug; say so instead of letting a
    comparison between a str and a float raise TypeError from deep inside evaluation."""
    kind = vocabulary.get(name).kind
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    else:
        number = numbers.Integral if kind == "int" else numbers.Real
        ok = isinstance(value, number) and not isinstance(value, bool)
    if not ok:
        raise ImageError(
            f"attribute {name}={value!r} is {type(value).__name__}; the vocabulary declares {kind}",
            code="invalid_attribute",
            status=500,
            field=name,
        )
