"""Fixed-horizon comparisons of a treatment with control, the sample-ratio check, and p-value
adjustment across metrics.

Inputs are sufficient statistics (units, conversions) or per-unit values; results are frozen
dataclasses. Degenerate data never raises: the result's `code` says what is missing and the
numbers it makes undefined are None. Tests, intervals and corrections come from scipy and
statsmodels; only the delta-method lift is written out here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

OK = "ok"
TOO_FEW_UNITS = "too_few_units"  # a variant has fewer than 2 units
ZERO_VARIANCE = "zero_variance"  # no spread in either variant: the test statistic is undefined
NO_CONTROL_CONVERSIONS = "no_control_conversions"  # relative lift undefined
ZERO_CONTROL_MEAN = "zero_control_mean"  # relative lift undefined
NO_UNITS = "no_units"  # SRM: nothing observed yet
UNEXPECTED_UNITS = "unexpected_units"  # SRM: units in a variant whose weight is 0

SRM_P_THRESHOLD = 0.001  # SRM alert below this p-value; a real split error gives far smaller p
MIN_UNITS = 2


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float

    def excludes_zero(self) -> bool:
        return self.lower > 0 or self.upper < 0


@dataclass(frozen=True)
class Proportion:
    """Units in a variant and how many of them converted (had at least one event)."""

    units: int
    conversions: int

    def __post_init__(self) -> None:
        if not 0 <= self.conversions <= self.units:
            raise ValueError(
                f"need 0 <= conversions <= units, got {self.conversions} of {self.units}"
            )

    @property
    def rate(self) -> float | None:
        return self.conversions / self.units if self.units else None


class _FixedHorizonTest:
    """What both comparisons share: significant when p falls below alpha (a test looked at once;
    the sequential test in experiments.sequential has its own rule)."""

    alpha: float
    p_value: float | None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha


@dataclass(frozen=True)
class ProportionComparison(_FixedHorizonTest):
    """Treatment minus control of a conversion rate (two-proportion z-test)."""

    code: str
    alpha: float
    control_rate: float | None
    treatment_rate: float | None
    difference: float | None
    difference_ci: Interval | None  # unpooled Wald
    z: float | None  # pooled standard error, as the test assumes equal rates
    p_value: float | None
    lift: float | None  # treatment / control - 1
    lift_ci: Interval | None  # delta method


@dataclass(frozen=True)
class MeanComparison(_FixedHorizonTest):
    """Treatment minus control of a per-unit mean (Welch's t-test)."""

    code: str
    alpha: float
    control_mean: float | None
    treatment_mean: float | None
    difference: float | None
    difference_ci: Interval | None
    t: float | None
    degrees_of_freedom: float | None
    p_value: float | None
    lift: float | None
    lift_ci: Interval | None
    cap: float | None  # the per-unit value everything above was lowered to, if capped


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio mismatch: do the units per variant match the weights they were split by?"""

    code: str
    chi_square: float | None
    p_value: float | None
    expected_units: Mapping[str, float]
    mismatch: bool  # True when the split is off (p below threshold, or unexpected units)


def lift_with_variance(
    treatment_mean: float,
    treatment_mean_variance: float,
    control_mean: float,
    control_mean_variance: float,
) -> tuple[float, float] | None:
    """treatment / control - 1 and its delta-method variance; None when control's mean is 0.

    The variances are those of the two means (e.g. p(1-p)/n). First-order Taylor expansion of
    the ratio: Var(L) = V_t / m_c^2 + m_t^2 * V_c / m_c^4.
    """
    if control_mean == 0:
        return None
    lift = treatment_mean / control_mean - 1
    variance = (
        treatment_mean_variance / control_mean**2
        + treatment_mean**2 * control_mean_variance / control_mean**4
    )
    return lift, variance


def relative_lift(
    treatment_mean: float,
    treatment_mean_variance: float,
    control_mean: float,
    control_mean_variance: float,
    alpha: float = 0.05,
) -> tuple[float, Interval] | None:
    """treatment / control - 1 and its two-sided 1 - alpha delta-method interval."""
    estimate = lift_with_variance(
        treatment_mean, treatment_mean_variance, control_mean, control_mean_variance
    )
    if estimate is None:
        return None
    lift, variance = estimate
    half_width = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(variance)
    return lift, Interval(lift - half_width, lift + half_width)


def compare_proportions(
    control: Proportion, treatment: Proportion, alpha: float = 0.05
) -> ProportionComparison:
    control_rate, treatment_rate = control.rate, treatment.rate
    if control.units < MIN_UNITS or treatment.units < MIN_UNITS:
        return ProportionComparison(
            TOO_FEW_UNITS, alpha, control_rate, treatment_rate, None, None, None, None, None, None
        )
    assert control_rate is not None and treatment_rate is not None
    difference = treatment_rate - control_rate
    pooled = (control.conversions + treatment.conversions) / (control.units + treatment.units)
    if pooled in (0.0, 1.0):
        return ProportionComparison(
            ZERO_VARIANCE,
            alpha,
            control_rate,
            treatment_rate,
            difference,
            None,
            None,
            None,
            None,
            None,
        )
    z, p_value = proportions_ztest(
        [treatment.conversions, control.conversions], [treatment.units, control.units]
    )
    lower, upper = confint_proportions_2indep(
        treatment.conversions,
        treatment.units,
        control.conversions,
        control.units,
        method="wald",
        compare="diff",
        alpha=alpha,
    )
    lift = relative_lift(
        treatment_rate,
        _binomial_mean_variance(treatment),
        control_rate,
        _binomial_mean_variance(control),
        alpha,
    )
    return ProportionComparison(
        code=OK if lift is not None else NO_CONTROL_CONVERSIONS,
        alpha=alpha,
        control_rate=control_rate,
        treatment_rate=treatment_rate,
        difference=difference,
        difference_ci=Interval(float(lower), float(upper)),
        z=float(z),
        p_value=float(p_value),
        lift=None if lift is None else lift[0],
        lift_ci=None if lift is None else lift[1],
    )


def _binomial_mean_variance(proportion: Proportion) -> float:
    rate = proportion.conversions / proportion.units
    return rate * (1 - rate) / proportion.units


def compare_means(
    control_values: ArrayLike,
    treatment_values: ArrayLike,
    alpha: float = 0.05,
    cap_quantile: float | None = None,
) -> MeanComparison:
    """Welch's t-test of one value per unit (aggregate events per unit before calling).

    `cap_quantile` (e.g. 0.99) lowers values above that quantile of both variants together to
    it, so a few huge orders do not decide the test; one cap for both keeps it unbiased.
    """
    control = np.asarray(control_values, dtype=float)
    treatment = np.asarray(treatment_values, dtype=float)
    if not (np.isfinite(control).all() and np.isfinite(treatment).all()):
        raise ValueError("per-unit values must be finite numbers")
    cap = None
    if cap_quantile is not None and control.size + treatment.size > 0:
        if not 0 < cap_quantile <= 1:
            raise ValueError(f"cap_quantile must be in (0, 1], got {cap_quantile}")
        cap = float(np.quantile(np.concatenate([control, treatment]), cap_quantile))
        control, treatment = np.minimum(control, cap), np.minimum(treatment, cap)
    control_mean = float(control.mean()) if control.size else None
    treatment_mean = float(treatment.mean()) if treatment.size else None

    def degenerate(code: str, difference: float | None = None) -> MeanComparison:
        return MeanComparison(
            code,
            alpha,
            control_mean,
            treatment_mean,
            difference,
            None,
            None,
            None,
            None,
            None,
            None,
            cap,
        )

    if control.size < MIN_UNITS or treatment.size < MIN_UNITS:
        return degenerate(TOO_FEW_UNITS)
    assert control_mean is not None and treatment_mean is not None
    difference = treatment_mean - control_mean
    control_variance, treatment_variance = control.var(ddof=1), treatment.var(ddof=1)
    if control_variance == 0 and treatment_variance == 0:
        return degenerate(ZERO_VARIANCE, difference)
    result = stats.ttest_ind(treatment, control, equal_var=False)
    interval = result.confidence_interval(confidence_level=1 - alpha)
    lift = relative_lift(
        treatment_mean,
        treatment_variance / treatment.size,
        control_mean,
        control_variance / control.size,
        alpha,
    )
    return MeanComparison(
        code=OK if lift is not None else ZERO_CONTROL_MEAN,
        alpha=alpha,
        control_mean=control_mean,
        treatment_mean=treatment_mean,
        difference=difference,
        difference_ci=Interval(float(interval.low), float(interval.high)),
        t=float(result.statistic),
        degrees_of_freedom=float(result.df),
        p_value=float(result.pvalue),
        lift=None if lift is None else lift[0],
        lift_ci=None if lift is None else lift[1],
        cap=cap,
    )


def sample_ratio_mismatch(
    units: Mapping[str, int],
    weights: Mapping[str, float],
    threshold: float = SRM_P_THRESHOLD,
) -> SrmResult:
    """Pearson chi-square of the units per variant against the weights (df = variants - 1).

    `weights` are normalised here; a variant missing from `units` counts as 0 units.
    """
    unknown = sorted(set(units) - set(weights))
    if unknown:
        raise ValueError(f"units for variants without a weight: {unknown}")
    total_weight = sum(weights.values())
    total_units = sum(units.get(name, 0) for name in weights)
    expected = {name: total_units * weight / total_weight for name, weight in weights.items()}
    if total_units == 0:
        return SrmResult(NO_UNITS, None, None, expected, mismatch=False)
    if any(units.get(name, 0) > 0 for name, weight in weights.items() if weight == 0):
        return SrmResult(UNEXPECTED_UNITS, None, 0.0, expected, mismatch=True)
    tested = [name for name, weight in weights.items() if weight > 0]
    if len(tested) < 2:  # everything in one variant: nothing can be mismatched
        return SrmResult(OK, 0.0, 1.0, expected, mismatch=False)
    chi_square, p_value = stats.chisquare(
        [units.get(name, 0) for name in tested], [expected[name] for name in tested]
    )
    return SrmResult(
        OK, float(chi_square), float(p_value), expected, mismatch=bool(p_value < threshold)
    )


def adjust_p_values(
    p_values: Mapping[str, float | None], method: Literal["holm", "fdr_bh"] = "holm"
) -> dict[str, float | None]:
    """Adjusted p-values across metrics: Holm (family-wise error) or Benjamini-Hochberg (false
    discovery rate). Metrics without a p-value stay None and do not count in the family."""
    names = [name for name, value in p_values.items() if value is not None]
    adjusted: dict[str, float | None] = dict.fromkeys(p_values)
    if names:
        _, corrected, _, _ = multipletests([p_values[name] for name in names], method=method)
        adjusted.update(zip(names, (float(value) for value in corrected), strict=True))
    return adjusted
