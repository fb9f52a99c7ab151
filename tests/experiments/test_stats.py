"""Fixed-horizon comparisons against the worked example, statsmodels and scipy; degenerate data
gives codes, not exceptions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from experiments.stats import (
    Proportion,
    adjust_p_values,
    compare_means,
    compare_proportions,
    relative_lift,
    sample_ratio_mismatch,
)


def test_worked_example() -> None:
    # REFERENCES.md: 480/10000 vs 560/10000 -> Z = 2.548, p = 0.0108, lift 16.7%,
    # delta-method CI [2.8%, 30.5%].
    result = compare_proportions(Proportion(10_000, 480), Proportion(10_000, 560))
    assert result.code == "ok"
    assert result.z == pytest.approx(2.548, abs=5e-4)
    assert result.p_value == pytest.approx(0.0108, abs=5e-5)
    assert result.lift == pytest.approx(1 / 6)
    assert result.lift_ci is not None
    assert result.lift_ci.lower == pytest.approx(0.028, abs=5e-4)
    assert result.lift_ci.upper == pytest.approx(0.305, abs=5e-4)
    assert result.difference == pytest.approx(0.008)
    assert result.significant


def test_delta_method_by_hand() -> None:
    p_t, p_c, n = 0.056, 0.048, 10_000
    v_t, v_c = p_t * (1 - p_t) / n, p_c * (1 - p_c) / n
    lift, interval = relative_lift(p_t, v_t, p_c, v_c, alpha=0.10)  # type: ignore[misc]
    half = stats.norm.ppf(0.95) * math.sqrt(v_t / p_c**2 + p_t**2 * v_c / p_c**4)
    assert lift == pytest.approx(p_t / p_c - 1)
    assert (interval.lower, interval.upper) == pytest.approx((lift - half, lift + half))
    assert relative_lift(0.1, 0.01, 0.0, 0.01) is None


@pytest.mark.parametrize("seed", range(5))
def test_proportions_agree_with_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_c, n_t = rng.integers(200, 20_000, size=2)
    c, t = rng.binomial(n_c, 0.1), rng.binomial(n_t, 0.11)
    result = compare_proportions(
        Proportion(int(n_c), int(c)), Proportion(int(n_t), int(t)), alpha=0.1
    )
    z, p_value = proportions_ztest([t, c], [n_t, n_c])  # pooled
    lower, upper = confint_proportions_2indep(t, n_t, c, n_c, method="wald", alpha=0.1)
    assert (result.z, result.p_value) == pytest.approx((z, p_value))
    assert result.difference_ci is not None
    assert (result.difference_ci.lower, result.difference_ci.upper) == pytest.approx((lower, upper))
    # The Wald interval is unpooled: difference -/+ z * sqrt(p_t q_t / n_t + p_c q_c / n_c).
    p_t, p_c = t / n_t, c / n_c
    half = stats.norm.ppf(0.95) * math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    assert (lower, upper) == pytest.approx((p_t - p_c - half, p_t - p_c + half))


@pytest.mark.parametrize("seed", range(5))
def test_means_agree_with_welch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = rng.lognormal(1.0, 1.0, size=rng.integers(20, 3000))
    treatment = rng.lognormal(1.1, 1.3, size=rng.integers(20, 3000))
    result = compare_means(control, treatment)
    expected = stats.ttest_ind(treatment, control, equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert result.code == "ok" and result.cap is None
    assert (result.t, result.p_value, result.degrees_of_freedom) == pytest.approx(
        (expected.statistic, expected.pvalue, expected.df)
    )
    assert result.difference_ci is not None
    assert (result.difference_ci.lower, result.difference_ci.upper) == pytest.approx(
        (interval.low, interval.high)
    )
    assert result.lift == pytest.approx(treatment.mean() / control.mean() - 1)


def test_capping_uses_one_cap_for_both_variants() -> None:
    control = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    treatment = np.array([1.0, 2.0, 3.0, 4.0, 1000.0])
    result = compare_means(control, treatment, cap_quantile=0.9)
    cap = float(np.quantile(np.concatenate([control, treatment]), 0.9))
    assert result.cap == pytest.approx(cap)
    expected = stats.ttest_ind(
        np.minimum(treatment, cap), np.minimum(control, cap), equal_var=False
    )
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.treatment_mean == pytest.approx(np.minimum(treatment, cap).mean())
    assert cap < 1000 and result.treatment_mean is not None and result.treatment_mean < 1010 / 5


@pytest.mark.parametrize(
    ("control", "treatment", "code", "defined"),
    [
        pytest.param(
            Proportion(1, 0), Proportion(100, 3), "too_few_units", set(), id="one-control-unit"
        ),
        pytest.param(Proportion(0, 0), Proportion(0, 0), "too_few_units", set(), id="empty"),
        pytest.param(
            Proportion(100, 0),
            Proportion(100, 0),
            "zero_variance",
            {"difference"},
            id="no-conversions-anywhere",
        ),
        pytest.param(
            Proportion(100, 100),
            Proportion(50, 50),
            "zero_variance",
            {"difference"},
            id="everyone-converts",
        ),
        pytest.param(
            Proportion(100, 0),
            Proportion(100, 4),
            "no_control_conversions",
            {"difference", "difference_ci", "z", "p_value"},
            id="no-control-conversion",
        ),
    ],
)
def test_degenerate_proportions(
    control: Proportion, treatment: Proportion, code: str, defined: set[str]
) -> None:
    result = compare_proportions(control, treatment)
    assert result.code == code
    numbers = ("difference", "difference_ci", "z", "p_value", "lift", "lift_ci")
    assert {name for name in numbers if getattr(result, name) is not None} == defined
    assert not result.significant or result.p_value is not None


@pytest.mark.parametrize(
    ("control", "treatment", "code", "defined"),
    [
        pytest.param([1.0], [1.0, 2.0], "too_few_units", set(), id="one-unit"),
        pytest.param([], [], "too_few_units", set(), id="none"),
        pytest.param([2.0, 2.0], [3.0, 3.0, 3.0], "zero_variance", {"difference"}, id="constant"),
        pytest.param(
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 5.0],
            "zero_control_mean",
            {"difference", "difference_ci", "t", "p_value"},
            id="zero-control-mean",
        ),
    ],
)
def test_degenerate_means(
    control: list[float], treatment: list[float], code: str, defined: set[str]
) -> None:
    result = compare_means(control, treatment)
    assert result.code == code
    numbers = ("difference", "difference_ci", "t", "p_value", "lift", "lift_ci")
    assert {name for name in numbers if getattr(result, name) is not None} == defined


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="conversions"):
        Proportion(10, 11)
    with pytest.raises(ValueError, match="finite"):
        compare_means([1.0, float("nan")], [1.0, 2.0])


def test_srm_passes_a_fair_split_and_flags_a_skewed_one() -> None:
    fair = sample_ratio_mismatch(
        {"control": 5020, "treatment": 4980}, {"control": 1, "treatment": 1}
    )
    assert fair.code == "ok" and not fair.mismatch
    assert fair.expected_units == {"control": 5000, "treatment": 5000}
    # chi2 = 2 * 200^2 / 5200 = 15.4, df = 1 -> p = 8.7e-5 < 0.001
    skewed = sample_ratio_mismatch(
        {"control": 5000, "treatment": 5400}, {"control": 0.5, "treatment": 0.5}
    )
    assert skewed.chi_square == pytest.approx(2 * 200**2 / 5200)
    assert skewed.p_value == pytest.approx(stats.chi2.sf(2 * 200**2 / 5200, df=1))
    assert skewed.mismatch


def test_srm_uses_k_minus_one_degrees_of_freedom() -> None:
    units = {"control": 2100, "a": 2950, "b": 4950}
    weights = {"control": 0.2, "a": 0.3, "b": 0.5}
    result = sample_ratio_mismatch(units, weights)
    expected = stats.chisquare([2100, 2950, 4950], [2000, 3000, 5000])
    assert (result.chi_square, result.p_value) == pytest.approx(
        (expected.statistic, expected.pvalue)
    )
    assert result.p_value == pytest.approx(stats.chi2.sf(expected.statistic, df=2))


def test_srm_degenerate_cases() -> None:
    weights = {"control": 0.99, "treatment": 0.01}
    nothing = sample_ratio_mismatch({}, weights)
    assert (nothing.code, nothing.p_value, nothing.mismatch) == ("no_units", None, False)
    stray = sample_ratio_mismatch(
        {"control": 100, "treatment": 3}, {"control": 1.0, "treatment": 0.0}
    )
    assert (stray.code, stray.mismatch) == ("unexpected_units", True)
    all_in_one = sample_ratio_mismatch({"control": 100}, {"control": 1.0, "treatment": 0.0})
    assert (all_in_one.code, all_in_one.mismatch) == ("ok", False)
    with pytest.raises(ValueError, match="without a weight"):
        sample_ratio_mismatch({"other": 3}, weights)


def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p_values = {"click": 0.01, "purchase": None, "return": 0.04, "add_to_cart": 0.03}
    # Holm: sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> monotone 0.06.
    assert adjust_p_values(p_values, "holm") == pytest.approx(
        {"click": 0.03, "purchase": None, "return": 0.06, "add_to_cart": 0.06}
    )
    # BH: 0.01 * 3/1, 0.03 * 3/2, 0.04 * 3/3 = 0.03, 0.045, 0.04 -> step-up 0.03, 0.04, 0.04.
    assert adjust_p_values(p_values, "fdr_bh") == pytest.approx(
        {"click": 0.03, "purchase": None, "return": 0.04, "add_to_cart": 0.04}
    )
    assert adjust_p_values({"click": None}) == {"click": None}
