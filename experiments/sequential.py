"""Always-valid inference for continuous monitoring: the mixture SPRT with a normal mixture.

A fixed-horizon test looked at after every batch of data rejects a true null far more often
than alpha. The mSPRT's likelihood ratio of "difference ~ N(0, tau^2)" against "difference = 0",

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2))),

with d the observed difference and V its variance, is a martingale under the null, so
P(Lambda ever reaches 1/alpha) <= alpha however often it is checked. The p-value
p_n = min(p_{n-1}, 1/Lambda_n) and the confidence sequence are therefore valid at every look.

tau^2 follows GrowthBook: tau^2 = rho^2 * V * N (N = units in both arms, so V * N is the
per-unit variance) with rho^2 = (-2 ln alpha + ln(-2 ln alpha + 1)) / N*, which makes the
sequence tightest when N reaches N*, the planned sample. Solving Lambda >= 1/alpha for d gives
the half-width of the confidence sequence,

    d^2 >= 2 V (N rho^2 + 1) / (N rho^2) * ln(sqrt(N rho^2 + 1) / alpha),

and the running intersection of the intervals excludes 0 exactly when the running p-value is
<= alpha. The relative lift uses the same boundary with its delta-method variance (decisions
rest on the difference; the lift is for reading).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from experiments.config import Direction, ExperimentConfig
from experiments.stats import (
    MIN_UNITS,
    OK,
    TOO_FEW_UNITS,
    ZERO_VARIANCE,
    Interval,
    lift_with_variance,
)


@dataclass(frozen=True)
class SequentialConfig:
    alpha: float = 0.05
    # N*: total units (both arms) at which the confidence sequence is tuned to be tightest.
    planned_sample: int = 5000

    @classmethod
    def for_experiment(cls, experiment: ExperimentConfig) -> SequentialConfig:
        return cls(alpha=experiment.alpha, planned_sample=experiment.sequential_n_star)

    @property
    def rho_squared(self) -> float:
        log_term = -2 * math.log(self.alpha)
        return (log_term + math.log(log_term + 1)) / self.planned_sample


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm: units, and the mean and variance of a unit's value."""

    units: int
    mean: float
    variance: float

    @classmethod
    def from_conversions(cls, units: int, conversions: int) -> ArmStats:
        rate = conversions / units if units else 0.0
        return cls(units, rate, rate * (1 - rate))

    @classmethod
    def from_sums(cls, units: int, total: float, total_of_squares: float) -> ArmStats:
        """From the sum and sum of squares of per-unit values (sample variance, ddof=1)."""
        if units < MIN_UNITS:
            return cls(units, total / units if units else 0.0, 0.0)
        mean = total / units
        return cls(units, mean, max(0.0, (total_of_squares - units * mean**2) / (units - 1)))

    @property
    def mean_variance(self) -> float:
        return self.variance / self.units if self.units else math.inf


@dataclass(frozen=True)
class SequentialResult:
    """One look at treatment minus control; p-value and sequences are running over all looks."""

    code: str
    alpha: float
    control_units: int
    treatment_units: int
    difference: float | None
    p_value: float | None  # always valid; None before the first look with data
    difference_cs: Interval | None
    lift: float | None
    lift_cs: Interval | None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value <= self.alpha

    def shows_harm(self, direction: Direction, tolerance: float = 0.0) -> bool:
        """The sequence lies wholly beyond `tolerance` on the harmful side: e.g. below 0 for
        clicks, above +0.005 for an error rate allowed to rise by half a percentage point."""
        if self.difference_cs is None:
            return False
        if direction == "decrease_is_bad":
            return self.difference_cs.upper < -tolerance
        return self.difference_cs.lower > tolerance


def log_likelihood_ratio(
    difference: ArrayLike, variance: ArrayLike, total_units: ArrayLike, rho_squared: float
) -> NDArray[np.float64]:
    """ln Lambda, elementwise; 0 (no evidence) where the variance is not positive."""
    difference, variance, total_units = (
        np.asarray(value, dtype=float) for value in (difference, variance, total_units)
    )
    positive = variance > 0
    safe_variance = np.where(positive, variance, 1.0)
    tau_squared = rho_squared * safe_variance * total_units
    spread = safe_variance + tau_squared
    log_ratio = 0.5 * np.log(safe_variance / spread) + tau_squared * difference**2 / (
        2 * safe_variance * spread
    )
    return np.where(positive, log_ratio, 0.0)


def half_width(
    variance: ArrayLike, total_units: ArrayLike, rho_squared: float, alpha: float
) -> NDArray[np.float64]:
    """Half-width of the 1 - alpha confidence sequence around the estimate, elementwise."""
    variance, total_units = np.asarray(variance, dtype=float), np.asarray(total_units, dtype=float)
    scaled = total_units * rho_squared
    return np.sqrt(2 * variance * (scaled + 1) / scaled * np.log(np.sqrt(scaled + 1) / alpha))


def always_valid_p_values(
    differences: ArrayLike,
    variances: ArrayLike,
    total_units: ArrayLike,
    config: SequentialConfig,
) -> NDArray[np.float64]:
    """Running always-valid p-values along the last axis (looks in time order), vectorised."""
    log_ratio = log_likelihood_ratio(differences, variances, total_units, config.rho_squared)
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(log_ratio, axis=-1)))


def update(
    previous: SequentialResult | None,
    control: ArmStats,
    treatment: ArmStats,
    config: SequentialConfig,
) -> SequentialResult:
    """The next look: cumulative arms since the test started, and the result of the last look
    (None at the first). Restart (previous=None) whenever the split changes, e.g. a ramp step.
    """
    carried_p = None if previous is None else previous.p_value
    carried_difference_cs = None if previous is None else previous.difference_cs
    carried_lift_cs = None if previous is None else previous.lift_cs

    def carry(code: str, difference: float | None) -> SequentialResult:
        return SequentialResult(
            code,
            config.alpha,
            control.units,
            treatment.units,
            difference,
            carried_p,
            carried_difference_cs,
            None,
            carried_lift_cs,
        )

    if control.units < MIN_UNITS or treatment.units < MIN_UNITS:
        return carry(TOO_FEW_UNITS, None)
    difference = treatment.mean - control.mean
    variance = treatment.mean_variance + control.mean_variance
    if variance <= 0 and difference != 0:
        variance = _all_or_none_variance(control) + _all_or_none_variance(treatment)
    if variance <= 0:
        return carry(ZERO_VARIANCE, difference)
    total_units = control.units + treatment.units
    log_ratio = float(log_likelihood_ratio(difference, variance, total_units, config.rho_squared))
    p_value = min(1.0, math.exp(-log_ratio))
    if carried_p is not None:
        p_value = min(p_value, carried_p)
    width = float(half_width(variance, total_units, config.rho_squared, config.alpha))
    difference_cs = _intersect(
        carried_difference_cs, Interval(difference - width, difference + width)
    )
    lift, lift_cs = None, carried_lift_cs
    estimate = lift_with_variance(
        treatment.mean, treatment.mean_variance, control.mean, control.mean_variance
    )
    if estimate is not None:
        lift, lift_variance = estimate
        if lift_variance > 0:  # 0 when the treatment has no conversions yet: nothing to bound
            lift_width = float(
                half_width(lift_variance, total_units, config.rho_squared, config.alpha)
            )
            lift_cs = _intersect(carried_lift_cs, Interval(lift - lift_width, lift + lift_width))
    return SequentialResult(
        OK,
        config.alpha,
        control.units,
        treatment.units,
        difference,
        p_value,
        difference_cs,
        lift,
        lift_cs,
    )


def monitor(
    looks: Iterable[tuple[ArmStats, ArmStats]], config: SequentialConfig
) -> list[SequentialResult]:
    """The result at each look of cumulative (control, treatment) snapshots, in time order."""
    results: list[SequentialResult] = []
    for control, treatment in looks:
        results.append(update(results[-1] if results else None, control, treatment, config))
    return results


def _intersect(previous: Interval | None, current: Interval) -> Interval:
    if previous is None:
        return current
    return Interval(max(previous.lower, current.lower), min(previous.upper, current.upper))


def _all_or_none_variance(arm: ArmStats) -> float:
    """The variance of a rate's mean when every unit or none converted (0% vs 100% is the
    clearest difference there is, yet the plug-in variance calls both arms certain and nothing
    would ever be significant): from (x + 1/2) / (n + 1), positive and shrinking with n. Zero for
    an arm that is not a 0/1 rate with no spread, which stays unmeasurable."""
    if arm.variance != 0 or arm.mean not in (0.0, 1.0):
        return 0.0 if arm.variance == 0 else arm.mean_variance
    shrunk = (arm.mean * arm.units + 0.5) / (arm.units + 1)
    return shrunk * (1 - shrunk) / arm.units
