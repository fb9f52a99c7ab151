"""The experiment report's JSON contract: the models `GET /v1/experiments/{id}/report` returns and
`curator experiments report` prints, and that `experiments.report.build_report` fills in.

Every model is frozen and forbids extra fields, so the contract changes only here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from experiments.config import Direction

Verdict = Literal["better", "worse", "no_difference_yet", "not_measurable"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Bounds(_Model):
    lower: float
    upper: float


class VariantSummary(_Model):
    name: str
    weight: float | None = Field(
        description="normalised share of traffic; null for a ramped experiment, whose split "
        "changes by step, and for a variant the experiment does not define"
    )
    units: int = Field(description="distinct units exposed (decided for) in this variant")
    decisions: int


class SrmSummary(_Model):
    """Sample-ratio mismatch: Pearson chi-square of units per variant against the weights."""

    code: str
    chi_square: float | None
    p_value: float | None
    threshold: float = Field(description="a p-value below this is a mismatch")
    passed: bool | None = Field(description="null when the split cannot be checked (see code)")
    expected_units: dict[str, float]
    note: str | None


class ArmSummary(_Model):
    variant: str
    units: int
    conversions: int | None = Field(description="units with >= 1 event; proportion metrics only")
    total: float | None = Field(description="sum of per-unit values; value metrics only")
    estimate: float | None = Field(description="conversion rate, or mean value per unit")


class SequentialSummary(_Model):
    """The always-valid (mSPRT) result; p-value and sequences run over every look so far."""

    code: str
    control_units: int
    treatment_units: int
    difference: float | None
    difference_cs: Bounds | None = Field(description="confidence sequence of the difference")
    lift: float | None
    lift_cs: Bounds | None = Field(description="confidence sequence of the relative lift")
    p_value: float | None
    significant: bool


class TimelinePoint(SequentialSummary):
    exposed_until: datetime = Field(description="first exposure of the last unit counted")


class Comparison(_Model):
    """One treatment against control on one metric."""

    control: ArmSummary
    treatment: ArmSummary
    code: str = Field(description="'ok', or why some numbers are null (see note)")
    note: str | None
    test: Literal["z", "welch_t"]
    statistic: float | None
    degrees_of_freedom: float | None
    difference: float | None = Field(description="treatment minus control")
    difference_ci: Bounds | None
    lift: float | None = Field(description="treatment / control - 1")
    lift_ci: Bounds | None = Field(description="delta method")
    p_value: float | None = Field(description="fixed horizon: valid read once, at the plan")
    adjusted_p_value: float | None = Field(
        description="Holm, across the outcome metrics of this treatment"
    )
    sequential: SequentialSummary
    timeline: list[TimelinePoint] = Field(
        description="the sequential result at cut points over units ordered by first exposure"
    )
    verdict: Verdict = Field(description="from the always-valid result, safe to read any time")


class MetricReport(_Model):
    metric: str
    kind: Literal["proportion", "value"]
    role: Literal["primary", "guardrail"]
    harmful_direction: Direction
    comparisons: list[Comparison] = Field(description="one per treatment")


class OperationalFigures(_Model):
    variant: str
    decisions: int
    decisions_with_errors: int
    error_rate: float
    p99_latency_ms: float
    images: int
    rejected_images: int
    reject_rate: float


class OperationalCheck(_Model):
    """An operational guardrail of the experiment: is the treatment worse beyond tolerance?"""

    metric: str
    treatment: str
    code: str
    control_value: float | None
    treatment_value: float | None
    difference: float | None = Field(description="treatment minus control, in the metric's unit")
    tolerance: float
    harmful_direction: Direction
    harmed: bool


class ExperimentReport(_Model):
    experiment_id: str
    generated_at: datetime
    status: str
    primary_metric: str
    alpha: float
    sequential_planned_sample: int
    looks: int = Field(description="cut points of each timeline")
    p_value_adjustment: Literal["holm"] = "holm"
    code: str
    note: str | None
    variants: list[VariantSummary]
    srm: SrmSummary
    metrics: list[MetricReport] = Field(description="primary first, then outcome guardrails")
    operational: list[OperationalFigures] = Field(description="per variant, from the decisions")
    operational_checks: list[OperationalCheck]
