"""Seeded simulations of the effectiveness step, from the command line or from tests.

    python -m experiments.simulate aa --runs 1000
    python -m experiments.simulate canary --effect -0.10

`aa`: many A/A experiments (no true difference) watched continuously; the always-valid test
must reject in at most alpha of them, up to Monte-Carlo error. `canary`: one ramped rollout
whose treatment changes the click rate by `effect` (relative); units are assigned by the real
hash, click (and guardrail events) per unit are Bernoulli draws, and every look runs the real
statistics and the real controller.

Each unit is seen once, at the step it arrives in, so a step's data are its own: the
sequential tests restart at every step, as the split changes.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from experiments.assignment import bucket_ranges, buckets, variants_for_buckets
from experiments.canary import (
    CanaryController,
    CanaryState,
    GuardrailEvidence,
    OperationalReading,
    Snapshot,
)
from experiments.config import CONTROL, ExperimentConfig, load_experiments, metric_kind
from experiments.sequential import (
    ArmStats,
    SequentialConfig,
    SequentialResult,
    always_valid_p_values,
    update,
)
from experiments.stats import MIN_UNITS, sample_ratio_mismatch

logger = logging.getLogger(__name__)

# Share of units with at least one such event in a step, or of requests for operational rates.
BASELINE_RATES: dict[str, float] = {
    "impression": 0.95,
    "click": 0.20,
    "add_to_cart": 0.05,
    "purchase": 0.02,
    "return": 0.002,
    "error_rate": 0.001,
    "reject_rate": 0.03,
}
BASELINE_P99_LATENCY_MS = 180.0
SIMULATED_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AAResult:
    runs: int
    looks: int
    alpha: float
    false_positives: int  # runs the always-valid test ever called significant
    # The same runs judged by a fixed-horizon z-test at every look: what peeking costs.
    peeking_false_positives: int

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.runs

    @property
    def peeking_false_positive_rate(self) -> float:
        return self.peeking_false_positives / self.runs

    @property
    def allowed_rate(self) -> float:
        """alpha plus three Monte-Carlo standard errors of a rate of alpha over `runs`."""
        return self.alpha + 3 * math.sqrt(self.alpha * (1 - self.alpha) / self.runs)


def simulate_aa(
    runs: int = 1000,
    units: int = 10_000,
    look_every: int = 100,
    click_rate: float = 0.05,
    alpha: float = 0.05,
    planned_sample: int = 5000,
    seed: int = 0,
) -> AAResult:
    """A/A experiments on one hashed population, each with fresh clicks, tested after every
    `look_every` arrivals. Under A/A the clicks do not depend on the assignment, so one
    population serves every run; each run is a false positive if it is ever significant."""
    experiment = ExperimentConfig.model_validate(
        {
            "id": "aa-simulation",
            "primary_metric": "click",
            "variants": [{"name": CONTROL}, {"name": "treatment"}],
        }
    )
    in_treatment = _variants(experiment, 0, units, experiment.normalized_weights()) != CONTROL
    arrivals = np.arange(look_every, units + 1, look_every)
    treatment_units = np.cumsum(in_treatment)[arrivals - 1]
    control_units = arrivals - treatment_units
    measurable = (treatment_units >= MIN_UNITS) & (control_units >= MIN_UNITS)
    arrivals = arrivals[measurable]
    treatment_units, control_units = treatment_units[measurable], control_units[measurable]
    config = SequentialConfig(alpha=alpha, planned_sample=planned_sample)
    rng = np.random.default_rng(seed)
    z_critical = float(stats.norm.ppf(1 - alpha / 2))
    false_positives = peeking_false_positives = 0
    for chunk in _chunk_sizes(runs, size=100):  # bounds memory to chunk * units draws
        clicks = rng.random((chunk, units)) < click_rate
        treatment_rate = np.cumsum(clicks & in_treatment, axis=1)[:, arrivals - 1] / treatment_units
        control_rate = np.cumsum(clicks & ~in_treatment, axis=1)[:, arrivals - 1] / control_units
        variance = (
            treatment_rate * (1 - treatment_rate) / treatment_units
            + control_rate * (1 - control_rate) / control_units
        )
        p_values = always_valid_p_values(
            treatment_rate - control_rate, variance, treatment_units + control_units, config
        )
        false_positives += int((p_values[:, -1] <= alpha).sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.abs(treatment_rate - control_rate) / np.sqrt(variance)
        peeking_false_positives += int((z > z_critical).any(axis=1).sum())
    return AAResult(runs, len(arrivals), alpha, false_positives, peeking_false_positives)


def _chunk_sizes(total: int, size: int) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def _variants(
    experiment: ExperimentConfig, first_unit: int, count: int, weights: dict[str, float]
) -> NDArray[np.str_]:
    unit_ids = [f"listing-{index}" for index in range(first_unit, first_unit + count)]
    ranges = bucket_ranges(experiment, weights)
    return variants_for_buckets(ranges, buckets(experiment.salt, unit_ids))


def canary_experiment() -> ExperimentConfig:
    """A canary sized to tell a 10% change in a 20% click rate within its ramp."""
    return ExperimentConfig.model_validate(
        {
            "id": "canary-simulation",
            "variants": [
                {"name": CONTROL, "scorer_card": "card-v0"},
                {"name": "treatment", "scorer_card": "card-v1"},
            ],
            "primary_metric": "click",
            "guardrails": ["add_to_cart", "error_rate"],
            "min_sample_per_variant": 10_000,
            "sequential_n_star": 20_000,
            "ramp": [5, 25, 50],
            "status": "running",
        }
    )


@dataclass(frozen=True)
class CanaryRun:
    effect: float
    state: CanaryState
    units: int  # arrivals simulated
    looks: int


@dataclass
class _StepTally:
    """Counts of the current ramp step, and the running sequential result of each metric."""

    units: dict[str, int] = field(default_factory=dict)
    events: dict[str, dict[str, int]] = field(default_factory=dict)  # metric -> variant -> n
    results: dict[str, SequentialResult] = field(default_factory=dict)

    def arm(self, metric: str, variant: str) -> ArmStats:
        return ArmStats.from_conversions(
            self.units.get(variant, 0), self.events.get(metric, {}).get(variant, 0)
        )


def simulate_canary(
    effect: float,
    experiment: ExperimentConfig | None = None,
    batch: int = 5000,
    max_units: int = 2_000_000,
    seed: int = 0,
) -> CanaryRun:
    """Ramp a treatment that multiplies the primary metric's rate by 1 + `effect` until the
    controller promotes it, rolls it back, or `max_units` have arrived; a look every `batch`
    arrivals. Guardrails behave the same in both variants."""
    experiment = experiment or canary_experiment()
    controller = CanaryController(experiment)
    rates = _rates(experiment, effect)
    config = SequentialConfig.for_experiment(experiment)
    rng = np.random.default_rng(seed)
    state, tally = controller.start(), _StepTally()
    arrived = looks = 0
    while state.status == "ramping" and arrived < max_units:
        weights = controller.weights(state)
        variants = _variants(experiment, arrived, batch, weights)
        arrived += batch
        looks += 1
        for variant in experiment.variant_names:
            in_variant = variants == variant
            tally.units[variant] = tally.units.get(variant, 0) + int(in_variant.sum())
            for metric, by_variant in rates.items():
                events = int((rng.random(int(in_variant.sum())) < by_variant[variant]).sum())
                counts = tally.events.setdefault(metric, {})
                counts[variant] = counts.get(variant, 0) + events
        for metric in rates:
            tally.results[metric] = update(
                tally.results.get(metric),
                tally.arm(metric, CONTROL),
                tally.arm(metric, controller.treatment),
                config,
            )
        snapshot = Snapshot(
            at=SIMULATED_START + timedelta(minutes=looks),
            units=dict(tally.units),
            srm=sample_ratio_mismatch(tally.units, weights),
            primary=tally.results[experiment.primary_metric],
            guardrails=_guardrail_evidence(experiment, tally.results),
        )
        transition = controller.decide(state, snapshot)
        if transition is not None:
            logger.info("%s after %d units: %s", transition.kind, arrived, transition.reason)
            state, tally = controller.apply(state, transition), _StepTally()
    return CanaryRun(effect, state, arrived, looks)


def _rates(experiment: ExperimentConfig, effect: float) -> dict[str, dict[str, float]]:
    """The event rate of each simulated metric per variant; the effect is on the primary."""
    rates: dict[str, dict[str, float]] = {}
    metrics = [experiment.primary_metric, *(g.metric for g in experiment.guardrails)]
    for metric in metrics:
        if metric == "p99_latency_ms":
            continue  # a reading, not a rate (see _guardrail_evidence)
        if metric_kind(metric) == "value":
            raise ValueError(f"the simulation draws events, not values; cannot simulate {metric}")
        base = BASELINE_RATES[metric]
        changed = base * (1 + effect) if metric == experiment.primary_metric else base
        rates[metric] = {CONTROL: base, **dict.fromkeys(experiment.treatment_names, changed)}
    return rates


def _guardrail_evidence(
    experiment: ExperimentConfig, results: dict[str, SequentialResult]
) -> dict[str, GuardrailEvidence]:
    evidence: dict[str, GuardrailEvidence] = {}
    for guardrail in experiment.guardrails:
        if guardrail.metric == "p99_latency_ms":
            evidence[guardrail.metric] = OperationalReading(
                BASELINE_P99_LATENCY_MS, BASELINE_P99_LATENCY_MS
            )
        else:
            evidence[guardrail.metric] = results[guardrail.metric]
    return evidence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    aa = commands.add_parser("aa", help="false-positive rate of A/A tests watched continuously")
    aa.add_argument("--runs", type=int, default=1000)
    aa.add_argument("--units", type=int, default=10_000, help="units per run")
    aa.add_argument("--look-every", type=int, default=100, help="units between looks")
    aa.add_argument("--click-rate", type=float, default=0.05)
    aa.add_argument("--seed", type=int, default=0)
    canary = commands.add_parser("canary", help="ramp a treatment with a given effect")
    canary.add_argument(
        "--effect",
        type=float,
        required=True,
        help="relative change of the primary metric, e.g. -0.10",
    )
    canary.add_argument(
        "--experiment",
        type=Path,
        default=None,
        help="a YAML file with one ramped experiment (default: built in)",
    )
    canary.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "aa":
        result = simulate_aa(
            runs=args.runs,
            units=args.units,
            look_every=args.look_every,
            click_rate=args.click_rate,
            seed=args.seed,
        )
        logger.info(
            "%d A/A runs, %d looks each: %d false positives, rate %.4f "
            "(allowed up to %.4f = alpha + 3 Monte-Carlo errors); a fixed-horizon "
            "test at every look: rate %.4f",
            result.runs,
            result.looks,
            result.false_positives,
            result.false_positive_rate,
            result.allowed_rate,
            result.peeking_false_positive_rate,
        )
        return 0 if result.false_positive_rate <= result.allowed_rate else 1
    experiment = canary_experiment()
    if args.experiment is not None:
        experiments = load_experiments(args.experiment)
        if len(experiments) != 1:
            parser.error(f"{args.experiment} holds {len(experiments)} experiments, not one")
        (experiment,) = experiments.values()
    run = simulate_canary(args.effect, experiment=experiment, seed=args.seed)
    percent = CanaryController(experiment).treatment_percent(run.state)
    logger.info(
        "effect %+.0f%%: %s, treatment at %g%% after %d units (%d looks)",
        100 * run.effect,
        run.state.status,
        percent,
        run.units,
        run.looks,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
