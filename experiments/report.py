"""The experiment report: what `GET /v1/experiments/{id}/report` returns and `curator experiments
report` prints, computed from the decision store with `experiments.stats` and
`experiments.sequential`. The models it fills in (the JSON contract) live in
`experiments.report_model`.

The outcome metrics are compared in `experiments.report_comparisons`; this module assembles the
report around them: the variants, the sample ratio check, and the operational guardrails
(errors, latency, rejections), which come from the decisions. A ramped experiment's report pools
every ramp step (a unit moved from control into the treatment counts in both); the per-step
decisions are the canary controller's.

Degenerate data (no units, one unit, no conversions) gives codes and notes, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from experiments import stats
from experiments.config import CONTROL, OPERATIONAL_METRICS, ExperimentConfig, Guardrail
from experiments.records import UnitMetrics, VariantDecisionStats, as_utc
from experiments.report_comparisons import metric_reports
from experiments.report_model import (
    ExperimentReport,
    OperationalCheck,
    OperationalFigures,
    SrmSummary,
    VariantSummary,
)
from experiments.report_notes import NO_DECISIONS, NOTES, RAMPED_SPLIT
from experiments.store import DecisionStore

DEFAULT_LOOKS = 20


def build_report(
    store: DecisionStore,
    experiment: ExperimentConfig,
    now: datetime | None = None,
    looks: int = DEFAULT_LOOKS,
) -> ExperimentReport:
    """The report of `experiment` from what `store` holds; `now` stamps it (default: the clock)."""
    if looks < 1:
        raise ValueError(f"looks must be at least 1, got {looks}")
    units = _by_variant(store.unit_metrics(experiment.id))
    decision_stats = {row.variant: row for row in store.decision_stats(experiment.id)}
    variant_names = _variant_names(experiment, [*units, *decision_stats])
    total_units = sum(len(rows) for rows in units.values())
    code = stats.OK if total_units else stats.NO_UNITS
    return ExperimentReport(
        experiment_id=experiment.id,
        generated_at=as_utc(now) if now is not None else datetime.now(UTC),
        status=experiment.status,
        primary_metric=experiment.primary_metric,
        alpha=experiment.alpha,
        sequential_planned_sample=experiment.sequential_n_star,
        looks=looks,
        code=code,
        note=NOTES.get(code),
        variants=[
            _variant_summary(experiment, name, units, decision_stats) for name in variant_names
        ],
        srm=_srm(experiment, {name: len(units.get(name, [])) for name in variant_names}),
        metrics=metric_reports(experiment, units, looks),
        operational=[
            _operational_figures(decision_stats[name])
            for name in variant_names
            if name in decision_stats
        ],
        operational_checks=_operational_checks(experiment, decision_stats),
    )


def _by_variant(rows: Iterable[UnitMetrics]) -> dict[str, list[UnitMetrics]]:
    grouped: dict[str, list[UnitMetrics]] = {}
    for row in rows:
        grouped.setdefault(row.variant, []).append(row)
    return grouped


def _variant_names(experiment: ExperimentConfig, seen: Iterable[str]) -> list[str]:
    """Configured variants in config order, then any the store holds beyond them, sorted."""
    extra = sorted(set(seen) - set(experiment.variant_names))
    return [*experiment.variant_names, *extra]


def _weights(experiment: ExperimentConfig) -> dict[str, float] | None:
    return None if experiment.ramp is not None else experiment.normalized_weights()


def _variant_summary(
    experiment: ExperimentConfig,
    name: str,
    units: dict[str, list[UnitMetrics]],
    decision_stats: dict[str, VariantDecisionStats],
) -> VariantSummary:
    weights = _weights(experiment) or {}
    decisions = decision_stats[name].decisions if name in decision_stats else 0
    return VariantSummary(
        name=name, weight=weights.get(name), units=len(units.get(name, [])), decisions=decisions
    )


def _srm(experiment: ExperimentConfig, units: dict[str, int]) -> SrmSummary:
    weights = _weights(experiment)
    if weights is None:
        return SrmSummary(
            code=RAMPED_SPLIT,
            chi_square=None,
            p_value=None,
            threshold=stats.SRM_P_THRESHOLD,
            passed=None,
            expected_units={},
            note=NOTES[RAMPED_SPLIT],
        )
    # A variant the experiment does not define should get no traffic: weight 0 flags its units.
    weights = {name: weights.get(name, 0.0) for name in units}
    result = stats.sample_ratio_mismatch(units, weights)
    return SrmSummary(
        code=result.code,
        chi_square=result.chi_square,
        p_value=result.p_value,
        threshold=stats.SRM_P_THRESHOLD,
        passed=None if result.code == stats.NO_UNITS else not result.mismatch,
        expected_units=dict(result.expected_units),
        note=NOTES.get(result.code),
    )


def _operational_figures(row: VariantDecisionStats) -> OperationalFigures:
    return OperationalFigures(
        variant=row.variant,
        decisions=row.decisions,
        decisions_with_errors=row.decisions_with_errors,
        error_rate=row.error_rate,
        p99_latency_ms=row.p99_latency_ms,
        images=row.images,
        rejected_images=row.rejected_images,
        reject_rate=row.reject_rate,
    )


def _operational_checks(
    experiment: ExperimentConfig, decision_stats: dict[str, VariantDecisionStats]
) -> list[OperationalCheck]:
    return [
        _operational_check(guardrail, treatment, decision_stats)
        for guardrail in experiment.guardrails
        if guardrail.metric in OPERATIONAL_METRICS
        for treatment in experiment.treatment_names
    ]


def _operational_check(
    guardrail: Guardrail, treatment: str, decision_stats: dict[str, VariantDecisionStats]
) -> OperationalCheck:
    """Harmed when the treatment is worse than control by more than the tolerance, as the
    canary controller judges a reading."""
    tolerance = guardrail.tolerance or 0.0
    rows = decision_stats.get(CONTROL), decision_stats.get(treatment)
    control_value, treatment_value = (
        None if row is None else float(getattr(row, guardrail.metric)) for row in rows
    )
    difference = None
    if control_value is not None and treatment_value is not None:
        difference = treatment_value - control_value
    harmed = False
    if difference is not None:
        harmed = (-1 if guardrail.direction == "decrease_is_bad" else 1) * difference > tolerance
    return OperationalCheck(
        metric=guardrail.metric,
        treatment=treatment,
        code=NO_DECISIONS if difference is None else stats.OK,
        control_value=control_value,
        treatment_value=treatment_value,
        difference=difference,
        tolerance=tolerance,
        harmful_direction=guardrail.direction,
        harmed=harmed,
    )
