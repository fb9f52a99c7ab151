"""What the ingress's user_config decides, built and checked whole, then swapped as one reference:
the policy set, the variants' policy sets and the experiments with their canary weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.core.assessment import ListingAssessor
from curator.core.settings import CuratorConfig
from experiments.config import experiments_from_data
from experiments.live import Arm, LiveExperiments
from rules import load_policy_set, policy_set_from_texts

# The canary weights of the ramped experiments, by experiment id, as the store has them now.
CanaryWeights = Callable[[LiveExperiments], Mapping[str, Mapping[str, float]]]


@dataclass(frozen=True)
class LiveConfig:
    """Everything user_config decides; a request reads one of these for its whole life."""

    assessor: ListingAssessor
    variant_assessors: Mapping[str, ListingAssessor] = field(default_factory=dict)
    experiments: LiveExperiments = field(default_factory=LiveExperiments)
    experiment_dicts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_files(cls, policy_dir: Path) -> LiveConfig:
        """What a replica serves before its first user_config: the policy files, no experiments."""
        return cls(ListingAssessor(load_policy_set(policy_dir)))

    @classmethod
    def build(
        cls,
        settings: CuratorConfig,
        policy_dir: Path,
        scorer_cards: tuple[str, ...],
        canary_weights: CanaryWeights,
    ) -> LiveConfig:
        """Raises CuratorError (PolicyError, ExperimentConfigError) or ValueError when the
        config cannot be served; nothing live has changed then."""
        policies = (
            policy_set_from_texts(settings.policies)
            if settings.policies is not None
            else load_policy_set(policy_dir)
        )
        variant_assessors = {name: ListingAssessor(policy_set_from_texts(texts))
                             for name, texts in settings.policy_sets.items()}
        experiments = LiveExperiments.checked(
            experiments_from_data(settings.experiments, "user_config")
            if settings.experiments else {},
            scorer_cards=scorer_cards,
            policy_sets=tuple(variant_assessors),
        )
        return cls(ListingAssessor(policies), variant_assessors,
                   experiments.with_weights(canary_weights(experiments)),
                   settings.experiments)

    @property
    def policy_set_version(self) -> str:
        return self.assessor.policy_set_version

    def assessor_for(self, arm: Arm) -> ListingAssessor:
        return self.variant_assessors[arm.policy_set] if arm.policy_set else self.assessor
