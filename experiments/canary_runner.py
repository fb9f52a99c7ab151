"""The canary controller at run time: its history kept in the decision store, its snapshots
counted from the store.

`CanaryController` (experiments.canary) decides; the runner feeds it and keeps what it decided.
Nothing is held in memory between calls: the state is rebuilt from the stored transitions each
time, so a restarted runner, or a second one beside it, carries on from the same history.
`tick` is one look at every running ramp; call it periodically and push `weights` to the
ingress (Serve `reconfigure`).

A snapshot counts the current step only: decisions made since its last transition, each unit
from its first decision since then (see `DecisionStore.exposures`), so the units, the SRM check
and the tests all describe traffic split by the step's weights.

Each look runs the mSPRT once on the step's cumulative data instead of carrying the running
p-value and confidence-sequence intersection of earlier looks, which the stateless runner does
not have. The likelihood ratio of any single look is valid on its own (the mSPRT's guarantee
covers every look), so this only makes the test a little more conservative; and a look depends
on nothing but what the store holds, so every backend and every runner decides alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from curator.contracts.errors import CuratorError
from experiments.canary import (
    CanaryController,
    CanaryState,
    GuardrailEvidence,
    OperationalReading,
    Snapshot,
    Transition,
    TransitionKind,
)
from experiments.config import CONTROL, ExperimentConfig, metric_kind
from experiments.records import UnitMetrics, VariantDecisionStats, as_utc
from experiments.sequential import ArmStats, SequentialConfig, SequentialResult, update
from experiments.stats import sample_ratio_mismatch
from experiments.store import DecisionStore, TransitionConflict

logger = logging.getLogger(__name__)

# Operational guardrails that are rates: (events, trials) of one variant at the current step.
# Trials are decisions and images, not listings: a listing decided twice counts twice, which
# understates the variance a little when listings repeat within a step.
_RATE_COUNTS: dict[str, Callable[[VariantDecisionStats], tuple[int, int]]] = {
    "error_rate": lambda stats: (stats.decisions_with_errors, stats.decisions),
    "reject_rate": lambda stats: (stats.rejected_images, stats.images),
}
_LATENCY = "p99_latency_ms"


class CanaryHistoryError(CuratorError):
    """The stored transitions do not follow from the experiment's ramp (was it edited while it
    ran?); the canary's state cannot be known, so nothing is served or decided from it."""

    status = 500
    code = "canary_history_mismatch"


class CanaryRunner:
    """Runs the ramped experiments of `experiments` (by id) over `store`; plain experiments
    only answer `weights`."""

    def __init__(self, store: DecisionStore, experiments: Mapping[str, ExperimentConfig]) -> None:
        misfiled = sorted(key for key, experiment in experiments.items() if key != experiment.id)
        if misfiled:
            raise ValueError(f"experiments must be keyed by their id; these are not: {misfiled}")
        self.store = store
        self.experiments = dict(experiments)
        self._controllers = {
            experiment_id: CanaryController(experiment)
            for experiment_id, experiment in self.experiments.items()
            if experiment.ramp is not None
        }

    def state(self, experiment_id: str) -> CanaryState:
        """The canary's state: its first step, moved on by each stored transition in turn."""
        controller = self._controller(experiment_id)
        return _replay(controller, self.store.transitions(experiment_id))

    def describe(self, experiment_id: str) -> dict[str, object]:
        """The canary state as GET /v1/experiments shows it."""
        state = self.state(experiment_id)
        return {
            "status": state.status,
            "step": state.step,
            "treatment_percent": self._controllers[experiment_id].treatment_percent(state),
            "transitions": [transition.to_json() for transition in state.history],
        }

    def weights(self, experiment_id: str) -> dict[str, float]:
        """The variant weights the ingress must serve now."""
        experiment = self._experiment(experiment_id)
        if experiment.ramp is None:
            return experiment.normalized_weights()
        return self._controllers[experiment_id].weights(self.state(experiment_id))

    def step_started_at(self, experiment_id: str) -> datetime | None:
        """When the current step began: the last transition, or None for the first step."""
        return _step_start(self.state(experiment_id))

    def snapshot(self, experiment_id: str, now: datetime) -> Snapshot:
        """What the store holds about the current step, as the controller reads it."""
        return self._snapshot(self._controller(experiment_id), self.state(experiment_id), now)

    def tick(self, now: datetime | None = None) -> list[Transition]:
        """One look at every running canary that is still ramping; records and returns the
        transitions decided.

        An experiment whose history is unusable, or whose look lost the race to another
        runner, is logged and skipped: the others still get their look (and their rollbacks).
        """
        # Checked before deciding: a naive time would only fail when the transition is stored.
        now = datetime.now(UTC) if now is None else as_utc(now)
        transitions = []
        for experiment_id, controller in self._controllers.items():
            if controller.experiment.status != "running":
                continue
            try:
                transition = self._look(controller, now)
            except TransitionConflict as conflict:
                logger.warning("canary %s: look dropped: %s", experiment_id, conflict.message)
                continue
            except CanaryHistoryError as error:
                logger.error("canary %s: not ticked: %s", experiment_id, error.message)
                continue
            if transition is not None:
                transitions.append(transition)
        return transitions

    def _look(self, controller: CanaryController, now: datetime) -> Transition | None:
        experiment_id = controller.experiment.id
        state = self.state(experiment_id)
        if state.status != "ramping":
            return None
        transition = controller.decide(state, self._snapshot(controller, state, now))
        if transition is None:
            return None
        self.store.record_transition(experiment_id, transition, after=len(state.history))
        logger.info("canary %s: %s", experiment_id, transition.reason)
        return transition

    def _snapshot(
        self, controller: CanaryController, state: CanaryState, now: datetime
    ) -> Snapshot:
        experiment = controller.experiment
        since = _step_start(state)
        units = _by_variant(experiment, self.store.unit_metrics(experiment.id, since))
        decisions = {row.variant: row for row in self.store.decision_stats(experiment.id, since)}
        counts = {variant: len(rows) for variant, rows in units.items()}
        config = SequentialConfig.for_experiment(experiment)
        arms = (CONTROL, controller.treatment)
        return Snapshot(
            at=now,
            units=counts,
            srm=sample_ratio_mismatch(counts, controller.weights(state)),
            primary=_outcome_result(experiment.primary_metric, units, arms, config),
            guardrails=_guardrail_evidence(experiment, units, decisions, arms, config),
        )

    def _experiment(self, experiment_id: str) -> ExperimentConfig:
        try:
            return self.experiments[experiment_id]
        except KeyError:
            raise KeyError(f"no experiment '{experiment_id}' is configured") from None

    def _controller(self, experiment_id: str) -> CanaryController:
        experiment = self._experiment(experiment_id)
        if experiment.ramp is None:
            raise ValueError(f"experiment {experiment_id} has no ramp; it is not a canary")
        return self._controllers[experiment_id]


def _replay(controller: CanaryController, transitions: Sequence[Transition]) -> CanaryState:
    state = controller.start()
    for seq, transition in enumerate(transitions, start=1):
        moves = (transition.from_percent, transition.to_percent)
        expected = _expected_move(controller, state, transition.kind)
        if moves != expected:
            raise CanaryHistoryError(
                f"experiment {controller.experiment.id}: stored transition {seq} "
                f"({transition.kind} from {moves[0]:g}% to {moves[1]:g}%) does not follow "
                f"from the ramp {list(controller.experiment.ramp or ())} in state "
                f"{state.status} at step {state.step}; was the ramp changed while it ran?"
            )
        state = controller.apply(state, transition)
    return state


def _expected_move(
    controller: CanaryController, state: CanaryState, kind: TransitionKind
) -> tuple[float, float] | None:
    """(from, to) percent of a `kind` transition out of `state`; None if it cannot happen."""
    if state.status != "ramping":
        return None
    current = controller.treatment_percent(state)
    last_step = state.step + 1 == len(controller.steps)
    if kind == "rollback":
        return current, 0.0
    if kind == "promote":
        return (current, 100.0) if last_step else None
    return None if last_step else (current, controller.steps[state.step + 1])


def _step_start(state: CanaryState) -> datetime | None:
    return state.history[-1].at if state.history else None


def _by_variant(
    experiment: ExperimentConfig, rows: Sequence[UnitMetrics]
) -> dict[str, list[UnitMetrics]]:
    """Units per configured variant (empty lists included); a variant the config does not
    name stays in, so that the SRM check refuses it loudly."""
    units: dict[str, list[UnitMetrics]] = {name: [] for name in experiment.variant_names}
    for row in rows:
        units.setdefault(row.variant, []).append(row)
    return units


def _guardrail_evidence(
    experiment: ExperimentConfig,
    units: Mapping[str, Sequence[UnitMetrics]],
    decisions: Mapping[str, VariantDecisionStats],
    arms: tuple[str, str],
    config: SequentialConfig,
) -> dict[str, GuardrailEvidence]:
    evidence: dict[str, GuardrailEvidence] = {}
    for guardrail in experiment.guardrails:
        found = _evidence(guardrail.metric, units, decisions, arms, config)
        if found is not None:  # left out: the controller waits for "no data yet"
            evidence[guardrail.metric] = found
    return evidence


def _evidence(
    metric: str,
    units: Mapping[str, Sequence[UnitMetrics]],
    decisions: Mapping[str, VariantDecisionStats],
    arms: tuple[str, str],
    config: SequentialConfig,
) -> GuardrailEvidence | None:
    """A guardrail's evidence at this step; None while a reading has no data in some arm."""
    if metric_kind(metric) != "operational":
        return _outcome_result(metric, units, arms, config)
    if metric in _RATE_COUNTS:
        control, treatment = (_rate_arm(metric, decisions.get(arm)) for arm in arms)
        return update(None, control, treatment, config)
    if metric == _LATENCY:
        control_stats, treatment_stats = (decisions.get(arm) for arm in arms)
        if control_stats is None or treatment_stats is None:
            return None
        return OperationalReading(control_stats.p99_latency_ms, treatment_stats.p99_latency_ms)
    raise ValueError(f"the canary runner has no measurement for operational metric '{metric}'")


def _outcome_result(
    metric: str,
    units: Mapping[str, Sequence[UnitMetrics]],
    arms: tuple[str, str],
    config: SequentialConfig,
) -> SequentialResult:
    control, treatment = (_outcome_arm(metric, units.get(arm, ())) for arm in arms)
    return update(None, control, treatment, config)


def _outcome_arm(metric: str, rows: Sequence[UnitMetrics]) -> ArmStats:
    if metric_kind(metric) == "proportion":
        return ArmStats.from_conversions(len(rows), sum(row.counts[metric] > 0 for row in rows))
    values = [row.values[metric.removesuffix("_value")] for row in rows]
    return ArmStats.from_sums(len(values), sum(values), sum(value**2 for value in values))


def _rate_arm(metric: str, stats: VariantDecisionStats | None) -> ArmStats:
    events, trials = (0, 0) if stats is None else _RATE_COUNTS[metric](stats)
    return ArmStats.from_conversions(trials, events)
