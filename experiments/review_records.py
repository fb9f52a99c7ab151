"""The plain records of the review queue: what the ingress keeps of a decision a person must look
at (`ReviewItem`, one per image), and what the person decided (`Review`).

No database here: the ingress builds review items and queues them in the outbox like decision
rows; the review desk (curator.core.review_desk) reads and writes them through
`experiments.review_store`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from experiments.records import as_utc

# What a reviewer can do to one image. Approve or reject it; make it the listing's main image;
# confirm or refuse the fix the service made to it.
REVIEW_ACTIONS: tuple[str, ...] = ("approve", "reject", "make_main", "confirm_fix", "refuse_fix")


@dataclass(frozen=True)
class ReviewItem:
    """One image of a decision that needs a person, with what the page shows of it.

    `violations` are the image's verdict as the answer gave it (rule_id, severity, attribute,
    measured, threshold, message); `boxes` its detections (kind, label, score, box in frame
    units); `selection` the listing's selection (main_image_id, order, reason, steps); `labels`
    the detection labels the service predicted (white_background, ... as booleans), for the
    labelled export. Thumbnails are JPEG bytes (None: the image could not be decoded).
    """

    decision_id: str
    image_id: str
    listing_id: str
    created_at: datetime
    category: str
    marketplace: str
    variant: str
    action: str
    rule_ids: Sequence[str]
    violations: Sequence[Mapping[str, Any]]
    boxes: Sequence[Mapping[str, Any]]
    selection: Mapping[str, Any]
    labels: Mapping[str, bool | None] = field(default_factory=dict)
    fix: Mapping[str, Any] | None = None
    image_size: Sequence[int] = ()  # the original's (width, height), px: where boxes are drawn
    source_url: str | None = None
    thumbnail: bytes | None = None
    fixed_thumbnail: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "created_at", as_utc(self.created_at))
        object.__setattr__(self, "rule_ids", list(self.rule_ids))


@dataclass(frozen=True)
class Review:
    """A reviewer's verdict on one image of a decision; one per (decision, image, reviewer): a
    second one from the same reviewer replaces the first."""

    decision_id: str
    image_id: str
    reviewer: str
    action: str
    reviewed_at: datetime
    rules_wrong: Sequence[str] = ()
    comment: str = ""

    def __post_init__(self) -> None:
        if self.action not in REVIEW_ACTIONS:
            raise ValueError(f"review action {self.action!r} is not one of {REVIEW_ACTIONS}")
        object.__setattr__(self, "reviewed_at", as_utc(self.reviewed_at))
        object.__setattr__(self, "rules_wrong", sorted(set(self.rules_wrong)))


@dataclass(frozen=True)
class RulePrecisionCounts:
    """How often reviewers upheld and overturned one rule's violations in a window."""

    rule_id: str
    upheld: int
    overturned: int
