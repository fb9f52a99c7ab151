"""Policies and verdicts in words: a rule's action and condition as a policy file writes them
(shared with `rules show`), and why each image of an assessed listing got its action (`rules
explain`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curator.contracts import schemas
from rules.conditions import AllOf, AnyOf, Between, Comparison, Membership, Not, leaves
from rules.schema import Rule

if TYPE_CHECKING:
    from rules.schema import Policy


def render_action(rule: Rule) -> str:
    """`warn -> fix pad_to_fill(fill_ratio=0.85), otherwise review`, `block -> reject`."""
    if rule.fix is None:
        return f"{rule.severity} -> {rule.action}"
    params = ", ".join(f"{key}={_value(value)}" for key, value in rule.fix.with_.items())
    return f"{rule.severity} -> fix {rule.fix.name}({params}), otherwise {rule.otherwise}"


def render_condition(condition: Any) -> str:
    """A condition as one readable expression, e.g. `any(a >= 0.98, b == false)`."""
    if isinstance(condition, Comparison):
        return f"{condition.attribute} {condition.op} {_value(condition.value)}"
    if isinstance(condition, Between):
        low, high = condition.between
        return f"{condition.attribute} between {_value(low)} and {_value(high)}"
    if isinstance(condition, Membership):
        values = ", ".join(_value(v) for v in condition.values)
        return f"{condition.attribute} {condition.op} {values}"
    if isinstance(condition, AllOf | AnyOf):
        name, children = ("all", condition.all_) if isinstance(condition, AllOf) else (
            "any", condition.any_)
        return f"{name}({', '.join(render_condition(child) for child in children)})"
    if isinstance(condition, Not):
        return f"not({render_condition(condition.not_)})"
    raise TypeError(f"not a condition: {condition!r}")


def _value(value: Any) -> str:
    """As written in a policy: YAML booleans, `1000` rather than the normalised `1000.0`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _measured(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _value(value)


def render_explanation(response: schemas.AssessResponse, policy: Policy) -> list[str]:
    rules = {rule.id: rule for rule in policy.rules}
    lines = [
        f"listing {response.listing_id}: {response.category} / {response.marketplace}, "
        f"policy {response.policy_id} (version {response.policy_version}, policy set "
        f"{response.policy_set_version})",
    ]
    for image in response.images:
        lines += ["", *_image_lines(image, rules)]
    lines += ["", "selection:"]
    lines += [f"  {step}" for step in response.selection.steps or [response.selection.reason]]
    return lines


def _image_lines(image: schemas.ImageAssessment, rules: dict[str, Rule]) -> list[str]:
    if image.status == "error" or image.verdict is None:
        error = image.error
        return [f"{image.image_id}: NOT ASSESSED: "
                f"{error.code + ': ' + error.message if error else 'no verdict'}"]
    quality = f", quality {image.quality.score:.3f}" if image.quality else ""
    duplicate = f", dropped as a near-duplicate of {image.duplicate_of}" if image.duplicate_of \
        else ""
    lines = [f"{image.image_id}: {str(image.action).upper()} as {image.verdict.evaluated_as} "
             f"image{quality}{duplicate}"]
    lines += _verdict_lines(image.verdict, rules, image.attributes or {}, indent="  ")
    if image.fix is not None:
        fix = image.fix
        lines.append(f"  fix: {' + '.join(fix.applied) or 'nothing applied'}; "
                     f"{'accepted' if fix.accepted else 'not accepted'}: {fix.reason}")
    if image.verdict_as_main is not None and image.verdict_as_main.violations:
        lines.append("  could not be the main image:")
        lines += _verdict_lines(image.verdict_as_main, rules, image.attributes or {},
                                indent="    ", with_unevaluated=False)
    return lines


def _verdict_lines(
    verdict: schemas.Verdict, rules: dict[str, Rule], attributes: dict[str, Any], indent: str,
    with_unevaluated: bool = True,
) -> list[str]:
    lines = []
    for violation in verdict.violations:
        rule = rules.get(violation.rule_id)
        action = render_action(rule) if rule is not None else violation.severity
        threshold = violation.threshold
        shown = ", ".join(_value(t) for t in threshold) if isinstance(threshold, list) \
            else _value(threshold)
        lines.append(f"{indent}{violation.rule_id} ({action}): {violation.attribute} is "
                     f"{_measured(violation.measured)}, required {violation.op} {shown}")
        lines.append(f"{indent}  {violation.message}")
    if with_unevaluated:
        for rule_id in verdict.not_evaluated:
            missing = _missing_attributes(rules.get(rule_id), attributes)
            lines.append(f"{indent}not evaluated: {rule_id} ({', '.join(missing)} not measured)")
    if not lines:
        lines.append(f"{indent}every rule for the {verdict.evaluated_as} role holds")
    return lines


def _missing_attributes(rule: Rule | None, attributes: dict[str, Any]) -> list[str]:
    if rule is None:
        return ["?"]
    names = [leaf.attribute for leaf, _ in leaves(rule.require)]
    return [name for name in dict.fromkeys(names) if attributes.get(name) is None]
