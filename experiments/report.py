"""The experiment report: what `GET /v1/experiments/{id}/report` returns and `curator experiments
report` prints, computed from the decision store with `experiments.stats` and
`experiments.sequential`. The models it fills in (the JSON contract) live in
`experiments.report_model`.

Per treatment and outcome metric (primary first, then the outcome guardrails): the fixed-horizon
comparison with control (two-proportion z-test of conversion rates, Welch's t-test of per-unit
values), the relative lift with its delta-method interval, Holm-adjusted p-values across the
metrics of one treatment, and the always-valid sequential result with a timeline of it over
exposure time. Operational guardrails (errors, latency, rejections) come from the decisions.

Verdicts rest on the always-valid test, since a report is read whenever someone asks; the
fixed-horizon p-values hold only when read once, at the planned sample. A ramped experiment's
report pools every ramp step (a unit moved from control into the treatment counts in both); the
per-step decisions are the canary controller's.

Degenerate data (no units, one unit, no conversions) gives codes and notes, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from experiments import stats
from experiments.config import (
    CONTROL,
    OPERATIONAL_METRICS,
    Direction,
    ExperimentConfig,
    Guardrail,
    harmful_direction,
    metric_kind,
)
from experiments.records import UnitMetrics, VariantDecisionStats, as_utc
from experiments.report_model import (
    ArmSummary,
    Bounds,
    Comparison,
    ExperimentReport,
    MetricReport,
    OperationalCheck,
    OperationalFigures,
    SequentialSummary,
    SrmSummary,
    TimelinePoint,
    VariantSummary,
    Verdict,
)
from experiments.sequential import ArmStats, SequentialConfig, SequentialResult, monitor, update
from experiments.store import DecisionStore

RAMPED_SPLIT = "ramped_split"  # SRM: the split changed along the ramp; checked per step instead
NO_DECISIONS = "no_decisions"  # operational check: a variant has decided nothing yet
DEFAULT_LOOKS = 20

NOTES: dict[str, str] = {
    stats.NO_UNITS: "no unit has been exposed yet",
    stats.TOO_FEW_UNITS: "control or treatment has fewer than 2 units: nothing to compare yet",
    stats.ZERO_VARIANCE: "no spread in either variant (e.g. no conversions at all): "
    "the test is undefined",
    stats.NO_CONTROL_CONVERSIONS: "control has no conversions: the relative lift is undefined",
    stats.ZERO_CONTROL_MEAN: "control's mean is 0: the relative lift is undefined",
    stats.UNEXPECTED_UNITS: "units in a variant the split gives no traffic "
    "(weight 0, or a variant the experiment does not define)",
    RAMPED_SPLIT: "the split changes with each ramp step, so one check over the whole run means "
    "nothing; the canary checks the split per step",
    NO_DECISIONS: "control or treatment has no decisions yet",
}


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
        metrics=_metric_reports(experiment, units, looks),
        operational=[
            _operational_figures(decision_stats[name])
            for name in variant_names
            if name in decision_stats
        ],
        operational_checks=_operational_checks(experiment, decision_stats),
    )


def outcome_metrics(experiment: ExperimentConfig) -> list[str]:
    """The metrics compared unit by unit: the primary, then outcome guardrails, each once."""
    metrics = [experiment.primary_metric]
    for guardrail in experiment.guardrails:
        if metric_kind(guardrail.metric) != "operational" and guardrail.metric not in metrics:
            metrics.append(guardrail.metric)
    return metrics


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


def _metric_reports(
    experiment: ExperimentConfig, units: dict[str, list[UnitMetrics]], looks: int
) -> list[MetricReport]:
    metrics = outcome_metrics(experiment)
    by_treatment = {
        treatment: _treatment_comparisons(experiment, metrics, units, treatment, looks)
        for treatment in experiment.treatment_names
    }
    reports = []
    for metric in metrics:
        kind = metric_kind(metric)
        assert kind != "operational"  # outcome_metrics leaves them out
        reports.append(
            MetricReport(
                metric=metric,
                kind=kind,
                role="primary" if metric == experiment.primary_metric else "guardrail",
                harmful_direction=harmful_direction(metric),
                comparisons=[by_treatment[name][metric] for name in experiment.treatment_names],
            )
        )
    return reports


def _treatment_comparisons(
    experiment: ExperimentConfig,
    metrics: Sequence[str],
    units: dict[str, list[UnitMetrics]],
    treatment: str,
    looks: int,
) -> dict[str, Comparison]:
    """Every metric of one treatment; Holm adjusts within this family."""
    control_rows, treatment_rows = units.get(CONTROL, []), units.get(treatment, [])
    fixed = {
        metric: _fixed_horizon(metric, control_rows, treatment_rows, experiment.alpha)
        for metric in metrics
    }
    adjusted = stats.adjust_p_values({metric: result.p_value for metric, result in fixed.items()})
    config = SequentialConfig.for_experiment(experiment)
    return {
        metric: _comparison(
            metric,
            _arm(metric, CONTROL, control_rows),
            _arm(metric, treatment, treatment_rows),
            fixed[metric],
            adjusted[metric],
            _timeline(metric, control_rows, treatment_rows, config, looks),
            config,
        )
        for metric in metrics
    }


def unit_value(unit: UnitMetrics, metric: str) -> float:
    """A unit's value on a metric: 1.0 or 0.0 for a conversion, the summed value otherwise."""
    if metric_kind(metric) == "proportion":
        return 1.0 if unit.counts[metric] > 0 else 0.0
    return unit.values[metric.removesuffix("_value")]


def _values(metric: str, rows: Sequence[UnitMetrics]) -> list[float]:
    return [unit_value(row, metric) for row in rows]


def _fixed_horizon(
    metric: str,
    control_rows: Sequence[UnitMetrics],
    treatment_rows: Sequence[UnitMetrics],
    alpha: float,
) -> stats.ProportionComparison | stats.MeanComparison:
    control, treatment = _values(metric, control_rows), _values(metric, treatment_rows)
    if metric_kind(metric) == "proportion":
        return stats.compare_proportions(
            stats.Proportion(len(control), int(sum(control))),
            stats.Proportion(len(treatment), int(sum(treatment))),
            alpha,
        )
    # Not capped: a quantile over every unit is 0 when fewer than 1% of units buy, and would
    # flatten every purchase; a cap needs the quantile of the non-zero values instead.
    return stats.compare_means(control, treatment, alpha)


def _arm(metric: str, variant: str, rows: Sequence[UnitMetrics]) -> ArmSummary:
    values = _values(metric, rows)
    total = float(sum(values))
    estimate = total / len(values) if values else None
    is_proportion = metric_kind(metric) == "proportion"
    return ArmSummary(
        variant=variant,
        units=len(values),
        conversions=int(total) if is_proportion else None,
        total=None if is_proportion else total,
        estimate=estimate,
    )


def _timeline(
    metric: str,
    control_rows: Sequence[UnitMetrics],
    treatment_rows: Sequence[UnitMetrics],
    config: SequentialConfig,
    looks: int,
) -> list[tuple[datetime, SequentialResult]]:
    """The sequential test at `looks` cut points over both arms' units in exposure order,
    cumulative; ties in exposure time are broken by variant and unit for a stable order."""
    rows = sorted(
        [*control_rows, *treatment_rows],
        key=lambda row: (row.first_exposed_at, row.variant, row.unit_id),
    )
    if not rows:
        return []
    values = np.array(_values(metric, rows))
    in_treatment = np.array([row.variant != CONTROL for row in rows])
    cuts = np.unique(np.ceil(np.arange(1, looks + 1) * len(rows) / looks).astype(int))
    looks_at = zip(
        _cumulative_arms(metric, values, ~in_treatment, cuts),
        _cumulative_arms(metric, values, in_treatment, cuts),
        strict=True,
    )
    results = monitor(looks_at, config)
    return [
        (rows[cut - 1].first_exposed_at, result)
        for cut, result in zip(cuts.tolist(), results, strict=True)
    ]


def _cumulative_arms(
    metric: str, values: NDArray[np.float64], in_arm: NDArray[np.bool_], cuts: NDArray[np.int_]
) -> list[ArmStats]:
    """One arm's statistics over the first `cut` units (both arms), for each cut."""
    picked = np.where(in_arm, values, 0.0)
    units = np.cumsum(in_arm)[cuts - 1]
    totals = np.cumsum(picked)[cuts - 1]
    squares = np.cumsum(picked**2)[cuts - 1]
    return [
        _arm_stats(metric, int(n), float(total), float(square))
        for n, total, square in zip(units, totals, squares, strict=True)
    ]


def _arm_stats(metric: str, units: int, total: float, total_of_squares: float) -> ArmStats:
    if metric_kind(metric) == "proportion":
        return ArmStats.from_conversions(units, round(total))
    return ArmStats.from_sums(units, float(total), float(total_of_squares))


def _comparison(
    metric: str,
    control: ArmSummary,
    treatment: ArmSummary,
    fixed: stats.ProportionComparison | stats.MeanComparison,
    adjusted_p_value: float | None,
    timeline: list[tuple[datetime, SequentialResult]],
    config: SequentialConfig,
) -> Comparison:
    if timeline:
        sequential = timeline[-1][1]
    else:  # no unit in either arm: the sequential test's own "too few units" result
        empty = ArmStats(0, 0.0, 0.0)
        sequential = update(None, empty, empty, config)
    test, statistic, degrees_of_freedom = _test_statistic(fixed)
    return Comparison(
        control=control,
        treatment=treatment,
        code=fixed.code,
        note=_note(fixed.code, sequential.code),
        test=test,
        statistic=statistic,
        degrees_of_freedom=degrees_of_freedom,
        difference=fixed.difference,
        difference_ci=_bounds(fixed.difference_ci),
        lift=fixed.lift,
        lift_ci=_bounds(fixed.lift_ci),
        p_value=fixed.p_value,
        adjusted_p_value=adjusted_p_value,
        sequential=_sequential_summary(sequential),
        timeline=[
            TimelinePoint(exposed_until=moment, **_sequential_fields(result))
            for moment, result in timeline
        ],
        verdict=verdict(sequential, harmful_direction(metric)),
    )


def _test_statistic(
    fixed: stats.ProportionComparison | stats.MeanComparison,
) -> tuple[Literal["z", "welch_t"], float | None, float | None]:
    if isinstance(fixed, stats.MeanComparison):
        return "welch_t", fixed.t, fixed.degrees_of_freedom
    return "z", fixed.z, None


def verdict(result: SequentialResult, direction: Direction) -> Verdict:
    """Better or worse once the always-valid sequence excludes 0, on the harmful side or not."""
    if result.p_value is None or result.difference_cs is None:
        return "not_measurable"
    if not result.difference_cs.excludes_zero():
        return "no_difference_yet"
    return "worse" if result.shows_harm(direction) else "better"


def _note(fixed_code: str, sequential_code: str) -> str | None:
    notes = [NOTES[fixed_code]] if fixed_code in NOTES else []
    if sequential_code != fixed_code and sequential_code in NOTES:
        notes.append(f"sequential test: {NOTES[sequential_code]}")
    return "; ".join(notes) or None


def _bounds(interval: stats.Interval | None) -> Bounds | None:
    return None if interval is None else Bounds(lower=interval.lower, upper=interval.upper)


def _sequential_fields(result: SequentialResult) -> dict[str, object]:
    return {
        "code": result.code,
        "control_units": result.control_units,
        "treatment_units": result.treatment_units,
        "difference": result.difference,
        "difference_cs": _bounds(result.difference_cs),
        "lift": result.lift,
        "lift_cs": _bounds(result.lift_cs),
        "p_value": result.p_value,
        "significant": result.significant,
    }


def _sequential_summary(result: SequentialResult) -> SequentialSummary:
    return SequentialSummary.model_validate(_sequential_fields(result))


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
