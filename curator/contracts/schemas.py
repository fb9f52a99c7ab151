"""The HTTP contract (v1), in one module. FastAPI serves it as OpenAPI at /docs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from curator.contracts.errors import CuratorError
from curator.contracts.ids import CALLER_ID_PATTERN, CATEGORY_PATTERN, MARKETPLACE_PATTERN

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class _ResolvedRule(Protocol):
    @property
    def id(self) -> str: ...

    def model_dump(self, *, mode: str, by_alias: bool, exclude_none: bool) -> dict[str, Any]: ...


class _ResolvedPolicy(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def layers(self) -> Sequence[str]: ...
    @property
    def rules(self) -> Sequence[_ResolvedRule]: ...
    @property
    def sources(self) -> Mapping[str, Sequence[str]]: ...


class ResolvesPolicies(Protocol):
    """What a policy set offers the contract (rules.PolicySet): the contract sits below the
    policy layer, so it names the shape, not the class."""

    @property
    def version(self) -> str: ...

    def resolve(self, category: str, marketplace: str) -> _ResolvedPolicy: ...

AttributeValue = bool | int | float | str | None
Action = Literal["approve", "review", "reject", "fix"]
Role = Literal["main", "alternate"]


# The instants an outcome event may carry. Outside them a time is a typo or an attack, and near
# the ends of datetime's range a time zone's offset overflows it on the way to UTC.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)


class ApiInput(BaseModel):
    """What every request model of the API shares: unknown fields are refused, and so are the
    non-finite numbers JSON parsers let through (`1e999` is +inf, `NaN`, `Infinity`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ImageInput(ApiInput):

    image_id: str = Field(pattern=CALLER_ID_PATTERN, description="Unique within the listing")
    data: str | None = Field(None, description="Base64 of the image file (a data: URL is accepted)")
    url: str | None = Field(
        None, max_length=2048, description="http(s) URL to fetch the image from"
    )
    role: Role | None = Field(None, description="The seller's intent; selection decides")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ImageInput:
        if (self.data is None) == (self.url is None):
            raise ValueError("give exactly one of data or url")
        return self


class AssessRequest(ApiInput):

    listing_id: str = Field(pattern=CALLER_ID_PATTERN)
    category: str = Field("default", pattern=CATEGORY_PATTERN)
    marketplace: str = Field("US", pattern=MARKETPLACE_PATTERN,
                             description="ISO 3166 alpha-2 region")
    images: list[ImageInput] = Field(min_length=1)
    include_fixed_images: bool = Field(
        True, description="Return each fixed image as base64 JPEG (false: only what was fixed)"
    )


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code")
    message: str
    field: str | None = None
    image_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Violation(BaseModel):
    rule_id: str
    severity: Literal["block", "warn", "info"]
    attribute: str | None
    measured: AttributeValue | list[AttributeValue]
    threshold: AttributeValue | list[AttributeValue]
    op: str | None
    message: str


class Verdict(BaseModel):
    evaluated_as: Role
    violations: list[Violation]
    not_evaluated: list[str] = Field(description="Rules whose attributes were not measured")


class Quality(BaseModel):
    score: float = Field(ge=0, le=1)
    scorer: str


class Detection(BaseModel):
    kind: str = Field(description="text or person")
    label: str = Field(description="e.g. overlay, on_product, FACE_FEMALE")
    score: float
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 in frame units")


class FixNotApplied(BaseModel):
    fix: str
    reason: str = Field(description="Why it did not change the image: nothing to do, or refused")


class FixResult(BaseModel):
    applied: list[str] = Field(description="Fixes that changed the image, in the order applied")
    resolved: list[str] = Field(description="Rule ids the fixed image now passes (when accepted)")
    accepted: bool = Field(
        description="The fixed image resolves them and breaks no other rule. False: the fix was "
        "refused (it would break a rule, did not resolve one, or could not apply) or not "
        "attempted (another violation that no fix resolves holds the image back); the original "
        "stands and `reason` says what to do"
    )
    reason: str = Field(description="Why the fix was kept, refused or not attempted, in words")
    evaluated_as: Role | None = Field(
        None, description="The role the fix was for; main on an alternate: the fix that was "
        "tried to make it the main image, and refused"
    )
    targeted: list[str] = Field(default_factory=list, description="Rule ids the fix was for")
    rule_id: str | None = Field(
        None, description="When not accepted: the rule in the way: the one the fixed image would "
        "break, else one it still fails or could not resolve, or (not attempted) the one no fix "
        "resolves"
    )
    not_applied: list[FixNotApplied] = Field(
        default_factory=list, description="Requested fixes that did not change the image, and why"
    )
    verdict: Verdict | None = Field(None, description="The fixed image's verdict")
    image: str | None = Field(
        None, description="The fixed image, base64 JPEG (only when accepted)"
    )
    width: int | None = Field(None, description="Of the fixed image, when one was made")
    height: int | None = None


class ImageAssessment(BaseModel):
    image_id: str
    status: Literal["ok", "error"]
    attributes: dict[str, AttributeValue] | None = None
    quality: Quality | None = None
    verdict: Verdict | None = None
    action: Action | None = None
    eligible_as_main: bool | None = Field(None, description="Compliant with the main-image rules")
    verdict_as_main: Verdict | None = Field(
        None, description="For an alternate: its verdict had it been the main image"
    )
    error: ErrorBody | None = None
    fix: FixResult | None = Field(
        None, description="The fix considered for the image: with action fix, the fixed image to "
        "use instead of the original; with accepted false, why none is offered"
    )
    duplicate_of: str | None = Field(None, description="Dropped as a near-duplicate of this image")
    detections: list[Detection] | None = None
    timings_ms: dict[str, float] | None = Field(None, description="Per stage, ms")
    batch_sizes: dict[str, int] | None = Field(
        None, description="Per model stage: images in the batch this image ran in"
    )


class Selection(BaseModel):
    main_image_id: str | None
    order: list[str] = Field(description="Main first, then the alternates; duplicates left out")
    main_image_compliant: bool = Field(description="Compliant as it is, or once fixed")
    reason: str
    duplicates: dict[str, str] = Field(
        default_factory=dict, description="Dropped image id -> the image it duplicates"
    )
    steps: list[str] = Field(default_factory=list, description="How the selection came about")


class AssessResponse(BaseModel):
    listing_id: str
    decision_id: str
    category: str
    marketplace: str
    policy_id: str = Field(description="The policy layers applied, base first, joined by +")
    policy_version: str = Field(description="Hash of the effective rules that decided")
    policy_set_version: str = Field(description="Hash of the whole policy set deployed")
    variant: str = Field(description="The experiment variant that decided (control outside any)")
    experiment_id: str | None = Field(None, description="The running experiment, if any")
    bucket: int | None = Field(None, description="The listing's hash bucket (0-9999) in it")
    images: list[ImageAssessment]
    selection: Selection


class AdmissionState(BaseModel):
    limit: int = Field(description="Images this replica admits in flight now (adaptive)")
    in_flight: int
    admitted: int = Field(description="Listings admitted since the replica started")
    refused: int = Field(description="Listings refused with 429 since the replica started")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    policy_set_version: str
    admission: AdmissionState


class PolicyRule(BaseModel):
    id: str
    description: str
    applies_to: Literal["main", "alternate", "any"]
    require: dict[str, object]
    severity: Literal["block", "warn", "info"]
    action: Action
    fix: dict[str, object] | None = None
    otherwise: Literal["reject", "review"] | None = None
    message: str
    sources: list[str] = Field(description="Policy files that defined, then changed, the rule")


class PolicyResponse(BaseModel):
    category: str
    marketplace: str
    policy_id: str
    policy_version: str
    policy_set_version: str
    layers: list[str] = Field(description="Policy files applied, base first; later ones win")
    rules: list[PolicyRule]
    reload_error: str | None = Field(
        None, description="Why the last policy update was refused (the set shown stays live)"
    )

    @classmethod
    def of(
        cls, policies: ResolvesPolicies, category: str, marketplace: str,
        reload_error: str | None = None,
    ) -> PolicyResponse:
        """The effective policy of (category, marketplace): the HTTP answer and `curator rules
        show --json` alike."""
        policy = policies.resolve(category, marketplace)
        return cls(
            category=category,
            marketplace=marketplace,
            policy_id=policy.id,
            policy_version=policy.version,
            policy_set_version=policies.version,
            layers=list(policy.layers),
            rules=[
                PolicyRule(**rule.model_dump(mode="json", by_alias=True, exclude_none=True),
                           sources=list(policy.sources.get(rule.id, ())))
                for rule in policy.rules
            ],
            reload_error=reload_error,
        )


class VersionResponse(BaseModel):
    code_version: str
    ray_version: str
    replica_id: str = Field(description="The ingress replica that answered")
    policy: dict[str, str]
    models: dict[str, str]
    backends: dict[str, str]


class OutcomeEvent(ApiInput):

    event_id: str = Field(pattern=CALLER_ID_PATTERN, description="Unique; a repeat is ignored")
    type: Literal["impression", "click", "add_to_cart", "purchase", "return"]
    time: AwareDatetime = Field(description="When it happened, with a time zone")
    unit_id: str | None = Field(None, pattern=CALLER_ID_PATTERN, description="The listing id")
    decision_id: str | None = Field(None, max_length=64, pattern=CALLER_ID_PATTERN)
    value: float | None = Field(None, ge=0, description="Money, for purchase and return")

    @field_validator("time")
    @classmethod
    def _in_a_sane_window(cls, time: datetime) -> datetime:
        # Compared field by field in the sender's zone first: converting a time at the edge of
        # datetime's range to UTC would overflow.
        if not EARLIEST_EVENT_TIME.year - 1 <= time.year <= LATEST_EVENT_TIME.year:
            raise ValueError(f"must be between {EARLIEST_EVENT_TIME:%Y-%m-%d} and "
                             f"{LATEST_EVENT_TIME:%Y-%m-%d} (UTC)")
        utc = time.astimezone(UTC)
        if not EARLIEST_EVENT_TIME <= utc < LATEST_EVENT_TIME:
            raise ValueError(f"must be between {EARLIEST_EVENT_TIME:%Y-%m-%d} and "
                             f"{LATEST_EVENT_TIME:%Y-%m-%d} (UTC)")
        return utc

    @model_validator(mode="after")
    def _has_a_target(self) -> OutcomeEvent:
        if self.unit_id is None and self.decision_id is None:
            raise ValueError("give unit_id or decision_id (or both)")
        return self


# Written only by the service (`curator reviews export-outcomes`): a client posting it would
# forge reviewers' verdicts, so it is refused with a code of its own rather than as unknown.
RESERVED_OUTCOME_TYPES = ("overturned_by_review",)


class OutcomesRequest(ApiInput):

    events: list[OutcomeEvent] = Field(min_length=1, max_length=1000)

    @model_validator(mode="before")
    @classmethod
    def _no_reserved_types(cls, data: Any) -> Any:
        events = data.get("events") if isinstance(data, dict) else None
        for index, event in enumerate(events if isinstance(events, list) else []):
            if isinstance(event, dict) and event.get("type") in RESERVED_OUTCOME_TYPES:
                # Not a ValueError: pydantic passes it on, and the error handler answers with
                # this code instead of a generic invalid_request.
                raise CuratorError(f"outcome type {event['type']!r} is written by the service "
                                   "from reviews; clients cannot post it",
                                   code="reserved_outcome_type", status=422,
                                   field=f"events.{index}.type")
        return data


class OutcomesResponse(BaseModel):
    accepted: int = Field(description="Events queued for the store (repeats are dropped there)")


class ExperimentState(BaseModel):
    id: str
    status: str
    description: str
    primary_metric: str
    weights: dict[str, float] = Field(description="Each variant's share of traffic now")
    variants: list[dict[str, object]]
    ramp: list[float] | None = None
    canary: dict[str, object] | None = Field(
        None, description="Canary state: status, step, treatment percent, transitions"
    )


class ExperimentsResponse(BaseModel):
    experiments: list[ExperimentState]
    generated_at: datetime
