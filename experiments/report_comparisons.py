"""The outcome metrics of an experiment report, compared treatment by treatment with control.

Per treatment and outcome metric (primary first, then the outcome guardrails): the fixed-horizon
comparison with control (two-proportion z-test of conversion rates, Welch's t-test of per-unit
values), the relative lift with its delta-method interval, Holm-adjusted p-values across the
metrics of one treatment, and the always-valid sequential result with a timeline of it over
exposure time.

Verdicts rest on the always-valid test, since a report is read whenever someone asks; the
fixed-horizon p-values hold only when read once, at the planned sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from experiments import stats
from experiments.config import CONTROL, Direction, ExperimentConfig, harmful_direction, metric_kind
from experiments.records import UnitMetrics
from experiments.report_model import (
    ArmSummary,
    Bounds,
    Comparison,
    MetricReport,
    SequentialSummary,
    TimelinePoint,
    Verdict,
)
from experiments.report_notes import NOTES
from experiments.sequential import ArmStats, SequentialConfig, SequentialResult, monitor, update


def outcome_metrics(experiment: ExperimentConfig) -> list[str]:
    """The metrics compared unit by unit: the primary, then outcome guardrails, each once."""
    metrics = [experiment.primary_metric]
    for guardrail in experiment.guardrails:
        if metric_kind(guardrail.metric) != "operational" and guardrail.metric not in metrics:
            metrics.append(guardrail.metric)
    return metrics


def metric_reports(
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
