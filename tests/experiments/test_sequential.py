"""The mixture SPRT: its formulas written out independently, the running p-value and confidence
sequence agreeing with each other, and degenerate looks carrying what is known."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from experiments.config import ExperimentConfig
from experiments.sequential import (
    ArmStats,
    SequentialConfig,
    SequentialResult,
    always_valid_p_values,
    half_width,
    log_likelihood_ratio,
    monitor,
    update,
)
from experiments.stats import Interval

CONFIG = SequentialConfig(alpha=0.05, planned_sample=5000)


def test_rho_squared_is_growthbooks() -> None:
    # (-2 ln 0.05 + ln(-2 ln 0.05 + 1)) / 5000 = (5.99146 + 1.94469) / 5000
    assert CONFIG.rho_squared == pytest.approx(7.93615 / 5000, rel=1e-5)
    experiment = ExperimentConfig.model_validate(
        {
            "id": "e",
            "primary_metric": "click",
            "alpha": 0.1,
            "sequential_n_star": 800,
            "variants": [{"name": "control"}, {"name": "treatment"}],
        }
    )
    assert SequentialConfig.for_experiment(experiment) == SequentialConfig(0.1, 800)


def test_likelihood_ratio_is_the_normal_mixture() -> None:
    difference, variance, total = 0.008, 9.856e-6, 20_000
    tau_squared = CONFIG.rho_squared * variance * total
    by_hand = math.sqrt(variance / (variance + tau_squared)) * math.exp(
        tau_squared * difference**2 / (2 * variance * (variance + tau_squared))
    )
    assert math.exp(log_likelihood_ratio(difference, variance, total, CONFIG.rho_squared)) == (
        pytest.approx(by_hand)
    )
    assert log_likelihood_ratio(0.1, 0.0, total, CONFIG.rho_squared) == 0.0  # no evidence


def test_half_width_is_growthbooks_confidence_sequence() -> None:
    # GrowthBook's form: sqrt(s2) * sqrt(2 (N rho2 + 1) / (N^2 rho2) * ln(sqrt(N rho2 + 1) / a))
    # with s2 = V * N, the per-unit variance.
    variance, total, rho2, alpha = 9.856e-6, 20_000, CONFIG.rho_squared, 0.05
    s2 = variance * total
    growthbook = math.sqrt(s2) * math.sqrt(
        2 * (total * rho2 + 1) / (total**2 * rho2) * math.log(math.sqrt(total * rho2 + 1) / alpha)
    )
    assert half_width(variance, total, rho2, alpha) == pytest.approx(growthbook)
    # The boundary is where the likelihood ratio reaches 1 / alpha.
    width = float(half_width(variance, total, rho2, alpha))
    assert log_likelihood_ratio(width, variance, total, rho2) == pytest.approx(-math.log(alpha))


def test_worked_example_is_not_yet_significant_sequentially() -> None:
    # The fixed-horizon test gives p = 0.0108 at 10000 per arm; the always-valid one pays for
    # being allowed to look at any time.
    result = update(
        None, ArmStats.from_conversions(10_000, 480), ArmStats.from_conversions(10_000, 560), CONFIG
    )
    variance = 0.056 * 0.944 / 10_000 + 0.048 * 0.952 / 10_000
    expected_log_ratio = log_likelihood_ratio(0.008, variance, 20_000, CONFIG.rho_squared)
    assert result.code == "ok"
    assert result.p_value == pytest.approx(math.exp(-expected_log_ratio))
    assert result.p_value is not None and 0.0108 < result.p_value < 1
    width = float(half_width(variance, 20_000, CONFIG.rho_squared, 0.05))
    assert result.difference_cs is not None
    assert (result.difference_cs.lower, result.difference_cs.upper) == pytest.approx(
        (0.008 - width, 0.008 + width)
    )
    assert result.lift == pytest.approx(1 / 6)
    assert result.lift_cs is not None and result.lift_cs.lower < 1 / 6 < result.lift_cs.upper


def _looks(
    seed: int, effect: float, looks: int = 60, per_look: int = 200, rate: float = 0.1
) -> list[tuple[ArmStats, ArmStats]]:
    rng = np.random.default_rng(seed)
    control = rng.binomial(per_look, rate, size=looks).cumsum()
    treatment = rng.binomial(per_look, rate * (1 + effect), size=looks).cumsum()
    units = per_look * np.arange(1, looks + 1)
    return [
        (ArmStats.from_conversions(int(n), int(c)), ArmStats.from_conversions(int(n), int(t)))
        for n, c, t in zip(units, control, treatment, strict=True)
    ]


@pytest.mark.parametrize("seed", range(6))
def test_p_value_and_confidence_sequence_agree_at_every_look(seed: int) -> None:
    results = monitor(_looks(seed, effect=0.25), CONFIG)
    assert any(r.significant for r in results) and not all(r.significant for r in results)
    for earlier, later in pairwise(results):
        assert later.p_value <= earlier.p_value  # type: ignore[operator]
        assert earlier.difference_cs.lower <= later.difference_cs.lower  # type: ignore[union-attr]
        assert later.difference_cs.upper <= earlier.difference_cs.upper  # type: ignore[union-attr]
    for result in results:
        assert result.difference_cs is not None
        assert result.significant == result.difference_cs.excludes_zero()


def test_vectorised_p_values_equal_the_monitor() -> None:
    looks = _looks(3, effect=0.1)
    results = monitor(looks, CONFIG)
    differences = [t.mean - c.mean for c, t in looks]
    variances = [t.mean_variance + c.mean_variance for c, t in looks]
    totals = [c.units + t.units for c, t in looks]
    vectorised = always_valid_p_values(differences, variances, totals, CONFIG)
    assert vectorised == pytest.approx([r.p_value for r in results])
    # Along the last axis: two identical rows give the same running values.
    assert always_valid_p_values([differences] * 2, [variances] * 2, [totals] * 2, CONFIG)[1] == (
        pytest.approx(vectorised)
    )


def test_degenerate_looks_carry_what_is_known() -> None:
    first = update(None, ArmStats.from_conversions(1, 0), ArmStats.from_conversions(1, 1), CONFIG)
    assert (first.code, first.p_value, first.difference_cs) == ("too_few_units", None, None)
    nothing_yet = update(
        first, ArmStats.from_conversions(50, 0), ArmStats.from_conversions(50, 0), CONFIG
    )
    assert (nothing_yet.code, nothing_yet.difference, nothing_yet.p_value) == (
        "zero_variance",
        0.0,
        None,
    )
    measured = update(
        nothing_yet,
        ArmStats.from_conversions(5000, 500),
        ArmStats.from_conversions(5000, 700),
        CONFIG,
    )
    assert measured.code == "ok" and measured.significant
    # A later look that cannot be measured keeps the running p-value and sequences.
    carried = update(measured, ArmStats(5000, 0.1, 0.0), ArmStats(5000, 0.14, 0.0), CONFIG)
    assert carried.code == "zero_variance"
    assert (carried.p_value, carried.difference_cs, carried.lift_cs) == (
        measured.p_value,
        measured.difference_cs,
        measured.lift_cs,
    )


def test_a_treatment_without_conversions_is_caught_and_its_lift_left_open() -> None:
    results = monitor(
        [
            (ArmStats.from_conversions(n, n // 10), ArmStats.from_conversions(n, 0))
            for n in range(100, 3001, 100)
        ],
        CONFIG,
    )
    assert results[-1].significant
    assert results[-1].shows_harm("decrease_is_bad")
    # Lift -100% has zero delta-method variance: no degenerate [-1, -1] sequence is kept.
    assert all(r.lift == -1 and r.lift_cs is None for r in results)


@pytest.mark.parametrize(
    ("interval", "direction", "tolerance", "harmed"),
    [
        pytest.param(Interval(-0.03, -0.01), "decrease_is_bad", 0.0, True, id="clicks-fell"),
        pytest.param(Interval(-0.03, 0.01), "decrease_is_bad", 0.0, False, id="clicks-unclear"),
        pytest.param(Interval(0.01, 0.03), "decrease_is_bad", 0.0, False, id="clicks-rose"),
        pytest.param(Interval(0.01, 0.03), "increase_is_bad", 0.0, True, id="returns-rose"),
        pytest.param(
            Interval(0.002, 0.004), "increase_is_bad", 0.005, False, id="errors-within-tolerance"
        ),
        pytest.param(
            Interval(0.006, 0.02), "increase_is_bad", 0.005, True, id="errors-beyond-tolerance"
        ),
    ],
)
def test_shows_harm(interval: Interval, direction: str, tolerance: float, harmed: bool) -> None:
    result = SequentialResult(
        "ok", 0.05, 1000, 1000, (interval.lower + interval.upper) / 2, 0.01, interval, None, None
    )
    assert result.shows_harm(direction, tolerance) is harmed  # type: ignore[arg-type]


def test_arm_stats_from_sums() -> None:
    values = np.array([0.0, 12.5, 0.0, 40.0, 3.25])
    arm = ArmStats.from_sums(len(values), values.sum(), (values**2).sum())
    assert (arm.mean, arm.variance) == pytest.approx((values.mean(), values.var(ddof=1)))
    assert arm.mean_variance == pytest.approx(values.var(ddof=1) / 5)
    assert ArmStats.from_conversions(200, 50) == ArmStats(200, 0.25, 0.1875)


def test_none_against_all_is_significant_despite_no_spread() -> None:
    # 0 of 40 control images rejected, 40 of 40 treatment ones: the plug-in variance of both
    # arms is zero, the evidence overwhelming.
    result = update(None, ArmStats.from_conversions(40, 0), ArmStats.from_conversions(40, 40),
                    CONFIG)
    assert result.code == "ok" and result.significant and result.difference == 1.0
    assert result.shows_harm("increase_is_bad")
    # A value metric without spread is not a rate: still unmeasurable.
    flat = update(None, ArmStats(40, 2.0, 0.0), ArmStats(40, 3.0, 0.0), CONFIG)
    assert flat.code == "zero_variance"
