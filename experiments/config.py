"""Experiment definitions: what is compared (variants), how units are split, what is measured.

Loaded from YAML files (`load_experiments`) or from the dicts of a Serve `user_config`
(`experiments_from_data`); either way every problem is an `ExperimentConfigError` whose message
names the source, the experiment and the field, e.g.

    experiments.yaml: experiment 'scorer-v1': variants.1.weight: Input should be greater than
    or equal to 0

Metric names are the outcome event types (a proportion: the share of units with at least one
such event), their value sums (per unit), and the operational guardrails the service measures
itself. Which direction of each is harmful is defined once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curator.contracts.errors import CuratorError
from curator.contracts.ids import EXPERIMENT_ID_PATTERN

CONTROL = "control"

# "overturned_by_review": a reviewer marked one of the decision's rule verdicts wrong (`curator
# reviews export-outcomes`); a guardrail, since more of them means worse decisions.
OUTCOME_EVENTS = (
    "impression", "click", "add_to_cart", "purchase", "return", "overturned_by_review",
)
VALUE_METRICS = ("purchase_value", "return_value")
# Measured by the service per request; harm is being worse than control by more than a tolerance.
OPERATIONAL_METRICS = ("error_rate", "p99_latency_ms", "reject_rate")

Direction = Literal["increase_is_bad", "decrease_is_bad"]
MetricKind = Literal["proportion", "value", "operational"]

_INCREASE_IS_BAD = frozenset({"return", "return_value", "overturned_by_review",
                              *OPERATIONAL_METRICS})

# How much worse than control an operational metric may be before it counts as harm, in the
# metric's own unit: error and reject rates as fractions of requests, latency in milliseconds.
DEFAULT_OPERATIONAL_TOLERANCE: dict[str, float] = {
    "error_rate": 0.005,
    "reject_rate": 0.02,
    "p99_latency_ms": 50.0,
}


class ExperimentConfigError(CuratorError):
    """An experiment definition is invalid; names the source, the experiment and the field."""

    status = 500
    code = "invalid_experiment"


def metric_kind(metric: str) -> MetricKind:
    if metric in OUTCOME_EVENTS:
        return "proportion"
    if metric in VALUE_METRICS:
        return "value"
    if metric in OPERATIONAL_METRICS:
        return "operational"
    known = ", ".join((*OUTCOME_EVENTS, *VALUE_METRICS, *OPERATIONAL_METRICS))
    raise ValueError(f"unknown metric '{metric}' (known: {known})")


def harmful_direction(metric: str) -> Direction:
    """The direction in which `metric` getting worse shows, e.g. more returns, fewer clicks."""
    return "increase_is_bad" if metric in _INCREASE_IS_BAD else "decrease_is_bad"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Variant(_Frozen):
    name: str = Field(min_length=1)
    # Relative share of the traffic, normalised over the variants; None (unset) counts as 1, so
    # leaving every weight out splits evenly. A ramped experiment takes its shares from the ramp.
    weight: float | None = Field(None, ge=0)
    # What the variant changes: the scorer card version and/or the policy set it runs with.
    # None keeps the service default.
    scorer_card: str | None = None
    policy_set: str | None = None


class Guardrail(_Frozen):
    """A metric the treatment must not harm. Written as a mapping or just the metric name."""

    metric: str
    # Defaults to the metric's natural harmful direction (see `harmful_direction`).
    direction: Direction
    # Operational metrics only: how much worse than control counts as harm, in the metric's unit
    # (see DEFAULT_OPERATIONAL_TOLERANCE). Outcome metrics are harmed by any significant change.
    tolerance: float | None = Field(None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"metric": data}
        if isinstance(data, Mapping) and isinstance(data.get("metric"), str):
            data = dict(data)
            metric = data["metric"]
            data.setdefault("direction", harmful_direction(metric))
            if metric in DEFAULT_OPERATIONAL_TOLERANCE:
                data.setdefault("tolerance", DEFAULT_OPERATIONAL_TOLERANCE[metric])
        return data

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        metric_kind(metric)
        return metric

    @model_validator(mode="after")
    def _tolerance_only_for_operational(self) -> Guardrail:
        if self.tolerance is not None and metric_kind(self.metric) != "operational":
            raise ValueError(
                f"tolerance: only operational guardrails "
                f"({', '.join(OPERATIONAL_METRICS)}) take a tolerance; any significant "
                f"harm to '{self.metric}' counts"
            )
        return self


class ExperimentConfig(_Frozen):
    id: str = Field(min_length=1, pattern=EXPERIMENT_ID_PATTERN)
    # Seeds the hash; a new salt per experiment keeps assignments independent. Defaults to id.
    salt: str = Field(default_factory=lambda data: str(data.get("id", "")), min_length=1)
    description: str = ""
    # The field of a request whose value is hashed: every request of a unit sees one variant.
    unit: str = "listing_id"
    variants: tuple[Variant, ...] = Field(min_length=2)
    primary_metric: str
    guardrails: tuple[Guardrail, ...] = ()
    # Units each variant needs (at the current ramp step) before a decision to move on.
    min_sample_per_variant: int = Field(1000, ge=1)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    # N*: the total sample (units, both arms) at which the sequential test is tuned to be
    # tightest; see experiments.sequential.
    sequential_n_star: int = Field(5000, ge=1)
    # Canary only: the treatment's share of traffic at each step, in percent.
    ramp: tuple[float, ...] | None = None
    status: Literal["draft", "running", "stopped"] = "draft"

    @field_validator("primary_metric")
    @classmethod
    def _primary_is_an_outcome(cls, metric: str) -> str:
        if metric_kind(metric) == "operational":
            raise ValueError(
                f"'{metric}' is an operational guardrail, not an outcome; "
                f"the primary metric is one of {', '.join(OUTCOME_EVENTS)} "
                f"or {', '.join(VALUE_METRICS)}"
            )
        return metric

    @field_validator("ramp")
    @classmethod
    def _ramp_increases(cls, ramp: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if ramp is None:
            return None
        if not ramp:
            raise ValueError("a ramp has at least one step (percent of traffic)")
        if any(not 0 < step <= 100 for step in ramp):
            raise ValueError(f"every step is a percentage in (0, 100], got {list(ramp)}")
        if any(later <= earlier for earlier, later in pairwise(ramp)):
            raise ValueError(f"steps must strictly increase, got {list(ramp)}")
        if ramp[0] == 100:
            raise ValueError(
                "a ramp needs a step below 100: at 100% no control is left to compare with"
            )
        return ramp

    @model_validator(mode="after")
    def _variants_are_consistent(self) -> ExperimentConfig:
        names = [variant.name for variant in self.variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"variants: names must be unique, repeated: {duplicates}")
        if names.count(CONTROL) != 1:
            raise ValueError(f"variants: exactly one variant must be named '{CONTROL}'")
        if sum(_relative_weight(variant) for variant in self.variants) <= 0:
            raise ValueError("variants: at least one weight must be positive")
        metrics = [guardrail.metric for guardrail in self.guardrails]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"guardrails: each metric at most once, got {metrics}")
        if self.ramp is not None:
            if len(self.variants) != 2:
                raise ValueError(
                    "ramp: a ramped (canary) experiment has exactly two variants, "
                    f"'{CONTROL}' and one treatment"
                )
            weighted = [v.name for v in self.variants if v.weight is not None]
            if weighted:
                raise ValueError(
                    f"variants: a ramped experiment takes its weights from ramp; "
                    f"remove weight from {weighted}"
                )
        return self

    @property
    def control(self) -> str:
        return CONTROL

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(variant.name for variant in self.variants)

    @property
    def treatment_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.variant_names if name != CONTROL)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"experiment {self.id} has no variant '{name}'")

    def normalized_weights(self, treatment_percent: float | None = None) -> dict[str, float]:
        """Each variant's share of the traffic, summing to 1.

        A ramped experiment gives its treatment `treatment_percent` (default: the first ramp
        step) and control the rest; the canary controller supplies the current step.
        """
        if self.ramp is not None:
            percent = self.ramp[0] if treatment_percent is None else treatment_percent
            if not 0 <= percent <= 100:
                raise ValueError(f"treatment_percent must be in [0, 100], got {percent}")
            (treatment,) = self.treatment_names
            return {treatment: percent / 100, CONTROL: 1 - percent / 100}
        if treatment_percent is not None:
            raise ValueError(f"experiment {self.id} has no ramp; its weights are fixed")
        total = sum(_relative_weight(variant) for variant in self.variants)
        return {variant.name: _relative_weight(variant) / total for variant in self.variants}


def _relative_weight(variant: Variant) -> float:
    return 1.0 if variant.weight is None else variant.weight


def load_experiments(source: str | Path) -> dict[str, ExperimentConfig]:
    """Experiments by id from a YAML file (a `Path`) or YAML text (a `str`).

    The document is one experiment, a list of them, or a mapping with key `experiments`.
    """
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExperimentConfigError(
                f"{source}: cannot read: {exc}", field=str(source)
            ) from None
        name = str(source)
    else:
        text, name = source, "<text>"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExperimentConfigError(f"{name}: not valid YAML: {exc}", field=name) from None
    return experiments_from_data(data, source=name)


def experiments_from_data(data: Any, source: str = "<data>") -> dict[str, ExperimentConfig]:
    """Experiments by id from parsed YAML or a Serve `user_config` value (same shapes)."""
    if isinstance(data, Mapping) and "experiments" in data:
        if set(data) != {"experiments"}:
            extra = sorted(str(key) for key in set(data) - {"experiments"})
            raise ExperimentConfigError(
                f"{source}: unexpected keys beside experiments: {extra}", field=source
            )
        data = data["experiments"]
    items = [data] if isinstance(data, Mapping) else data
    if not isinstance(items, list) or not items:
        hint = " (a str is YAML text; pass a Path to read a file)" if isinstance(data, str) else ""
        raise ExperimentConfigError(
            f"{source}: expected an experiment mapping, a list of them or a mapping with key "
            f"'experiments', got {type(data).__name__}{hint}",
            field=source,
        )
    experiments: dict[str, ExperimentConfig] = {}
    for index, item in enumerate(items):
        label = _label(item, index)
        if not isinstance(item, Mapping):
            raise ExperimentConfigError(
                f"{source}: {label}: expected a mapping, got {type(item).__name__}", field=source
            )
        try:
            experiment = ExperimentConfig.model_validate(item)
        except ValidationError as exc:
            raise ExperimentConfigError(
                f"{source}: {label}: {_describe(exc)}", field=source
            ) from None
        if experiment.id in experiments:
            raise ExperimentConfigError(
                f"{source}: {label}: id is already used by another experiment", field=source
            )
        experiments[experiment.id] = experiment
    return experiments


def _label(item: Any, index: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        return f"experiment '{item['id']}'"
    return f"experiment #{index + 1}"


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    problems = []
    for error in errors:
        loc = error["loc"]
        # An invalid item also makes its list "too short"; the item's own error says it all.
        if error["type"] == "too_short" and any(
            other["loc"][: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors
        ):
            continue
        field = ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)
