"""The plain records the effectiveness step exchanges: decisions and outcome events on their way
into the store, and the report rows that come out of it.

No database here: the ingress builds records, the outbox queues them, the statistics read
report rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

# What customers post (POST /v1/outcomes), and the one type only the service itself writes: a
# reviewer marked a rule's verdict wrong (`curator reviews export-outcomes`), which experiments
# may use as a guardrail. Customers cannot post it: they would be forging reviewers' verdicts.
CUSTOMER_OUTCOME_TYPES: tuple[str, ...] = (
    "impression", "click", "add_to_cart", "purchase", "return",
)
OVERTURNED_BY_REVIEW = "overturned_by_review"
OUTCOME_TYPES: tuple[str, ...] = (*CUSTOMER_OUTCOME_TYPES, OVERTURNED_BY_REVIEW)
REJECT_ACTION = "reject"


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive time is refused, since its zone can only be guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone; pass an aware UTC time")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class DecisionRecord:
    """One listing decision, as logged by the ingress. `unit_id` is the listing id (the unit of
    assignment); `image_actions` maps image id to its action (approve, reject, review, ...)."""

    decision_id: str
    unit_id: str
    created_at: datetime
    variant: str
    policy_set_version: str
    policy_version: str
    scorer_version: str
    category: str
    marketplace: str
    image_actions: Mapping[str, str]
    experiment_id: str | None = None
    bucket: int | None = None
    main_image_id: str | None = None
    error_count: int = 0
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "created_at", as_utc(self.created_at))
        # A copy: the caller may go on changing its dict while the record waits in the outbox.
        object.__setattr__(self, "image_actions", dict(self.image_actions))


@dataclass(frozen=True)
class OutcomeRecord:
    """One customer event (impression, click, ...), idempotent by `event_id`.

    Validated here, before it reaches the outbox, so that a row the database would refuse never
    waits there.
    """

    event_id: str
    type: str
    occurred_at: datetime
    unit_id: str | None = None
    decision_id: str | None = None
    value: float | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.type not in OUTCOME_TYPES:
            raise ValueError(f"outcome type {self.type!r} is not one of {OUTCOME_TYPES}")
        if self.unit_id is None and self.decision_id is None:
            raise ValueError(f"outcome {self.event_id!r} names neither a unit nor a decision")
        object.__setattr__(self, "occurred_at", as_utc(self.occurred_at))
        object.__setattr__(self, "received_at", as_utc(self.received_at))


@dataclass(frozen=True)
class Exposure:
    """A unit seen by a variant, and when it first was."""

    variant: str
    unit_id: str
    first_exposed_at: datetime


@dataclass(frozen=True)
class UnitMetrics:
    """Outcomes of one unit under one variant, counted from its first exposure on."""

    variant: str
    unit_id: str
    first_exposed_at: datetime
    counts: dict[str, int]  # outcome type -> events
    values: dict[str, float]  # outcome type -> summed value (store_queries.VALUE_DECIMALS places)


@dataclass(frozen=True)
class VariantDecisionStats:
    """Guardrail figures of one variant's decisions."""

    variant: str
    decisions: int
    units: int
    decisions_with_errors: int
    error_rate: float  # share of decisions with at least one failed image
    p99_latency_ms: float  # nearest-rank 99th percentile: a latency that was really observed
    images: int
    rejected_images: int
    reject_rate: float  # share of image actions that are "reject"
