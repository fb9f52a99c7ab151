"""What the ingress needs of the experiments while serving: which arm a listing is in, and the
decision row it leaves behind.

At most one experiment runs at a time, so every answer carries one variant and every decision
is attributable to exactly one comparison. Listings outside any running experiment are the
control arm of no experiment (`experiment_id` None).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from experiments.assignment import assign
from experiments.config import CONTROL, ExperimentConfig, ExperimentConfigError
from experiments.records import DecisionRecord, OutcomeRecord
from experiments.review_records import ReviewItem
from experiments.store import DecisionStore


@dataclass(frozen=True)
class Arm:
    """The variant a listing gets, and what that variant changes."""

    variant: str = CONTROL
    experiment_id: str | None = None
    bucket: int | None = None
    scorer_card: str | None = None  # None: the deployment's default card
    policy_set: str | None = None  # None: the live policy set


@dataclass(frozen=True)
class LiveExperiments:
    experiments: Mapping[str, ExperimentConfig] = field(default_factory=dict)
    # Current weights of ramped experiments (from the canary state), by experiment id.
    weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def checked(
        cls,
        experiments: Mapping[str, ExperimentConfig],
        scorer_cards: tuple[str, ...],
        policy_sets: tuple[str, ...],
    ) -> LiveExperiments:
        """Refuse what the running graph cannot serve: a second running experiment, a scorer
        card with no deployment, a policy set that was not supplied."""
        running = [e.id for e in experiments.values() if e.status == "running"]
        if len(running) > 1:
            raise ExperimentConfigError(
                f"at most one experiment runs at a time; running: {', '.join(running)}",
                field="experiments",
            )
        for experiment in experiments.values():
            for variant in experiment.variants:
                if variant.scorer_card is not None and variant.scorer_card not in scorer_cards:
                    raise ExperimentConfigError(
                        f"experiment {experiment.id}: variant {variant.name} needs scorer card "
                        f"{variant.scorer_card}, but the graph deploys only "
                        f"{', '.join(scorer_cards) or 'no model stages'}",
                        field="experiments",
                    )
                if variant.policy_set is not None and variant.policy_set not in policy_sets:
                    raise ExperimentConfigError(
                        f"experiment {experiment.id}: variant {variant.name} needs policy set "
                        f"{variant.policy_set}; supplied: {', '.join(policy_sets) or 'none'}",
                        field="experiments",
                    )
        return cls(experiments)

    @property
    def running(self) -> ExperimentConfig | None:
        return next((e for e in self.experiments.values() if e.status == "running"), None)

    def with_weights(self, weights: Mapping[str, Mapping[str, float]]) -> LiveExperiments:
        return LiveExperiments(self.experiments, weights)

    def arm_for(self, unit_id: str) -> Arm:
        experiment = self.running
        if experiment is None:
            return Arm()
        assignment = assign(experiment, unit_id, self.weights.get(experiment.id))
        variant = experiment.variant(assignment.variant)
        return Arm(assignment.variant, experiment.id, assignment.bucket, variant.scorer_card,
                   variant.policy_set)


def decision_record(
    answer: Any, arm: Arm, scorer_version: str, latency_ms: float,
    now: datetime | None = None,
) -> DecisionRecord:
    """The row a listing decision leaves in the store (`answer`: a schemas.AssessResponse)."""
    return DecisionRecord(
        decision_id=answer.decision_id,
        unit_id=answer.listing_id,
        created_at=now or datetime.now(UTC),
        variant=arm.variant,
        experiment_id=arm.experiment_id,
        bucket=arm.bucket,
        policy_set_version=answer.policy_set_version,
        policy_version=answer.policy_version,
        scorer_version=scorer_version,
        category=answer.category,
        marketplace=answer.marketplace,
        main_image_id=answer.selection.main_image_id,
        image_actions={image.image_id: image.action or "error" for image in answer.images},
        error_count=sum(image.status == "error" for image in answer.images),
        latency_ms=latency_ms,
    )


class EnsuredStore:
    """A DecisionStore whose schema is created on first use rather than at start-up, so a
    replica starts (and queues decisions in its outbox) while the database is down."""

    def __init__(self, store: DecisionStore) -> None:
        self.store = store
        self._ready = False
        self._lock = threading.Lock()

    def ready(self) -> DecisionStore:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.store.create_schema()
                    self._ready = True
        return self.store

    def write_decisions(self, records: Sequence[DecisionRecord]) -> int:
        return self.ready().write_decisions(records)

    def write_outcomes(self, records: Sequence[OutcomeRecord]) -> int:
        return self.ready().write_outcomes(records)

    def write_review_items(self, records: Sequence[ReviewItem]) -> int:
        return self.ready().write_review_items(records)
