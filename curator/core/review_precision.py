"""Rule precision from reviewers' verdicts: per rule, how often a person upheld the violation it
reported and how often they marked it wrong, with a Wilson 95% interval on the share upheld.

A review judges every rule the image violated: a rule the reviewer marked wrong is overturned,
the others are upheld. Wilson rather than the normal approximation: rules are often reviewed a
handful of times, and near 0 or 1 the normal interval leaves [0, 1] or collapses to a point.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from experiments.review_records import RulePrecisionCounts
from experiments.review_store import ReviewedItem

CONFIDENCE = 0.95


class RulePrecision(BaseModel):
    rule_id: str
    reviewed: int = Field(description="Violations of the rule that a reviewer judged")
    upheld: int
    overturned: int
    precision: float | None = Field(description="upheld / reviewed; null when none was judged")
    ci_low: float | None = Field(description="Wilson 95% interval of the precision")
    ci_high: float | None


class PrecisionReport(BaseModel):
    since: datetime
    until: datetime
    reviews: int = Field(description="Reviews made in [since, until)")
    confidence: float = CONFIDENCE
    rules: list[RulePrecision] = Field(description="By rule id")


def count_verdicts(reviewed: Iterable[ReviewedItem]) -> list[RulePrecisionCounts]:
    """Upheld and overturned per rule, by rule id. A review whose item is gone (purged before
    any reviewer saw it) names no rules and counts for none."""
    upheld: dict[str, int] = {}
    overturned: dict[str, int] = {}
    for entry in reviewed:
        wrong = set(entry.review.rules_wrong)
        for rule_id in entry.item.get("rule_ids") or []:
            target = overturned if rule_id in wrong else upheld
            target[rule_id] = target.get(rule_id, 0) + 1
    rules = sorted(set(upheld) | set(overturned))
    return [RulePrecisionCounts(r, upheld.get(r, 0), overturned.get(r, 0)) for r in rules]


def wilson_interval(successes: int, trials: int) -> tuple[float, float] | None:
    if trials == 0:
        return None
    from statsmodels.stats.proportion import proportion_confint  # heavy: only reports need it

    low, high = proportion_confint(successes, trials, alpha=1 - CONFIDENCE, method="wilson")
    return float(low), float(high)


def precision_report(reviewed: list[ReviewedItem], since: datetime, until: datetime
                     ) -> PrecisionReport:
    rules = []
    for counts in count_verdicts(reviewed):
        total = counts.upheld + counts.overturned
        interval = wilson_interval(counts.upheld, total)
        rules.append(RulePrecision(
            rule_id=counts.rule_id, reviewed=total, upheld=counts.upheld,
            overturned=counts.overturned,
            precision=round(counts.upheld / total, 4) if total else None,
            ci_low=round(interval[0], 4) if interval else None,
            ci_high=round(interval[1], 4) if interval else None,
        ))
    return PrecisionReport(since=since, until=until, reviews=len(reviewed), rules=rules)


def format_precision(report: PrecisionReport) -> str:
    """The report as a plain table (`curator eval --from-reviews`)."""
    lines = [f"rule precision from {report.reviews} review(s), "
             f"{report.since.isoformat()} to {report.until.isoformat()}",
             f"{'rule':<40} {'upheld':>7} {'overturned':>10} {'precision':>9}  95% CI"]
    for rule in report.rules:
        precision = f"{rule.precision:.3f}" if rule.precision is not None else "-"
        interval = (f"[{rule.ci_low:.3f}, {rule.ci_high:.3f}]"
                    if rule.ci_low is not None and rule.ci_high is not None else "-")
        lines.append(f"{rule.rule_id:<40} {rule.upheld:>7} {rule.overturned:>10} "
                     f"{precision:>9}  {interval}")
    if not report.rules:
        lines.append("(no reviewed violations in this window)")
    return "\n".join(lines)
