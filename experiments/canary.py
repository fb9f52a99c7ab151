"""The canary controller's decisions, as a pure state machine.

A ramped experiment starts its treatment on the first ramp step. At each look the controller
gets a `Snapshot` of the current step (units exposed since the step began, the SRM check, the
sequential result of the primary metric and the evidence on every guardrail) and answers with a
`Transition` or None (stay):

- roll back to 0% at once when a guardrail is harmed or the primary metric is significantly
  worse (the confidence sequence lies wholly on the harmful side);
- otherwise advance to the next step once every variant has `min_sample_per_variant` units at
  this step, the split passes the SRM check and every guardrail has evidence;
- after the last step below 100%, promote to 100% on the same conditions (by then the primary
  is not worse, or it would have been rolled back).

Nothing here reads a clock or a store: the caller builds snapshots, keeps the state, and pushes
`weights(state)` to the ingress through Serve `reconfigure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from experiments.config import ExperimentConfig, Guardrail, harmful_direction
from experiments.sequential import SequentialResult
from experiments.stats import OK, SrmResult

CanaryStatus = Literal["ramping", "promoted", "rolled_back"]
TransitionKind = Literal["advance", "promote", "rollback"]


@dataclass(frozen=True)
class Transition:
    kind: TransitionKind
    from_percent: float  # the treatment's share of traffic before, percent
    to_percent: float  # and after
    reason: str
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "from_percent": self.from_percent,
                "to_percent": self.to_percent, "reason": self.reason, "at": self.at.isoformat()}


@dataclass(frozen=True)
class CanaryState:
    experiment_id: str
    step: int  # index into the ramp steps below 100%
    status: CanaryStatus = "ramping"
    history: tuple[Transition, ...] = ()


@dataclass(frozen=True)
class OperationalReading:
    """A guardrail measured as one value per variant (e.g. p99 latency over the step)."""

    control: float
    treatment: float


GuardrailEvidence = SequentialResult | OperationalReading


@dataclass(frozen=True)
class Snapshot:
    """What is known about the current ramp step, counted from the moment it began."""

    at: datetime
    units: Mapping[str, int]  # by variant
    srm: SrmResult
    primary: SequentialResult
    # By metric. Rates (outcome events, error and reject rates) come as sequential results and
    # are harmed when the sequence lies beyond the tolerance; others as plain readings.
    guardrails: Mapping[str, GuardrailEvidence]


@dataclass(frozen=True)
class Health:
    harms: tuple[str, ...]  # each a reason to roll back
    blockers: tuple[str, ...]  # each a reason not to move on yet


class CanaryController:
    def __init__(self, experiment: ExperimentConfig) -> None:
        if experiment.ramp is None:
            raise ValueError(f"experiment {experiment.id} has no ramp; a canary needs one")
        self.experiment = experiment
        (self.treatment,) = experiment.treatment_names
        # A trailing 100 in the ramp is the promotion itself: no control is left to measure.
        self.steps = tuple(percent for percent in experiment.ramp if percent < 100)

    def start(self) -> CanaryState:
        return CanaryState(self.experiment.id, step=0)

    def treatment_percent(self, state: CanaryState) -> float:
        if state.status == "promoted":
            return 100.0
        if state.status == "rolled_back":
            return 0.0
        return self.steps[state.step]

    def weights(self, state: CanaryState) -> dict[str, float]:
        """The variant weights to serve in `state`."""
        return self.experiment.normalized_weights(self.treatment_percent(state))

    def assess(self, snapshot: Snapshot) -> Health:
        harms: list[str] = []
        blockers: list[str] = []
        primary = self.experiment.primary_metric
        if snapshot.primary.shows_harm(harmful_direction(primary)):
            harms.append(
                f"primary metric {primary} is significantly worse: "
                f"{_describe_sequential(snapshot.primary)}"
            )
        for guardrail in self.experiment.guardrails:
            evidence = snapshot.guardrails.get(guardrail.metric)
            if evidence is None:
                blockers.append(f"no data yet for guardrail {guardrail.metric}")
            elif _is_harmed(guardrail, evidence):
                harms.append(
                    f"guardrail {guardrail.metric} is harmed: "
                    f"{_describe_evidence(guardrail, evidence)}"
                )
        if snapshot.primary.p_value is None:
            blockers.append(
                f"primary metric {primary} is not measurable yet ({snapshot.primary.code})"
            )
        minimum = self.experiment.min_sample_per_variant
        for variant in self.experiment.variant_names:
            units = snapshot.units.get(variant, 0)
            if units < minimum:
                blockers.append(f"{variant} has {units:,} of the {minimum:,} units a step needs")
        if snapshot.srm.code != OK:
            blockers.append(f"the split cannot be checked yet ({snapshot.srm.code})")
        elif snapshot.srm.mismatch:
            blockers.append(
                f"sample ratio mismatch: units {dict(snapshot.units)} against "
                f"expected {_rounded(snapshot.srm.expected_units)}, "
                f"p = {snapshot.srm.p_value:.2g}"
            )
        return Health(tuple(harms), tuple(blockers))

    def decide(self, state: CanaryState, snapshot: Snapshot) -> Transition | None:
        """The transition this snapshot calls for, or None to stay at the current step."""
        if state.status != "ramping":
            return None
        percent = self.treatment_percent(state)
        health = self.assess(snapshot)
        if health.harms:
            return Transition(
                "rollback",
                percent,
                0.0,
                f"rolled back from {percent:g}%: " + "; ".join(health.harms),
                snapshot.at,
            )
        if health.blockers:
            return None
        evidence = (
            f"every variant has at least {self.experiment.min_sample_per_variant:,} "
            f"units, the split passes the SRM check (p = {snapshot.srm.p_value:.2g}), "
            f"no guardrail is harmed; {self.experiment.primary_metric}: "
            f"{_describe_sequential(snapshot.primary)}"
        )
        if state.step + 1 < len(self.steps):
            following = self.steps[state.step + 1]
            return Transition(
                "advance",
                percent,
                following,
                f"advanced from {percent:g}% to {following:g}%: {evidence}",
                snapshot.at,
            )
        return Transition(
            "promote",
            percent,
            100.0,
            f"promoted to 100% after the last step ({percent:g}%): {evidence}",
            snapshot.at,
        )

    def apply(self, state: CanaryState, transition: Transition) -> CanaryState:
        history = (*state.history, transition)
        if transition.kind == "advance":
            return replace(state, step=state.step + 1, history=history)
        status: CanaryStatus = "promoted" if transition.kind == "promote" else "rolled_back"
        return replace(state, status=status, history=history)


def _is_harmed(guardrail: Guardrail, evidence: GuardrailEvidence) -> bool:
    tolerance = guardrail.tolerance or 0.0
    if isinstance(evidence, SequentialResult):
        return evidence.shows_harm(guardrail.direction, tolerance)
    change = evidence.treatment - evidence.control
    if guardrail.direction == "decrease_is_bad":
        change = -change
    return change > tolerance


def _describe_evidence(guardrail: Guardrail, evidence: GuardrailEvidence) -> str:
    if isinstance(evidence, SequentialResult):
        text = _describe_sequential(evidence)
    else:
        text = f"treatment {evidence.treatment:.4g} against control {evidence.control:.4g}"
    if guardrail.tolerance:
        text += f", beyond the tolerance of {guardrail.tolerance:g}"
    return text


def _describe_sequential(result: SequentialResult) -> str:
    if result.difference is None or result.difference_cs is None or result.p_value is None:
        return f"not measurable yet ({result.code})"
    level = f"{1 - result.alpha:.0%}"
    return (
        f"treatment - control = {result.difference:+.4f}, {level} confidence sequence "
        f"[{result.difference_cs.lower:+.4f}, {result.difference_cs.upper:+.4f}], "
        f"always-valid p = {result.p_value:.3g} "
        f"(control {result.control_units:,} units, treatment {result.treatment_units:,})"
    )


def _rounded(values: Mapping[str, float]) -> dict[str, int]:
    return {name: round(value) for name, value in values.items()}
