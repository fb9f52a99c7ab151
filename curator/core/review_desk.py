"""The review desk: what the review pages and the precision report ask of the store, as one
plain class (no HTTP, no Ray). The queue lists decisions with an image nobody has judged yet,
newest first; a decision leaves it once every one of its images has a verdict.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from curator.contracts.errors import CuratorError
from curator.core.review_precision import PrecisionReport, precision_report
from curator.core.settings import ReviewSettings
from experiments.review_records import REVIEW_ACTIONS, Review
from experiments.review_store import ReviewStore
from experiments.store import DecisionStore

logger = logging.getLogger("ray.serve")

# The precision report's window when the caller names none, and the years a bound may name
# (outside them a time is surely a typo, and some backends cannot store it).
DEFAULT_WINDOW = timedelta(days=30)
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class QueueFilters:
    category: str | None = None
    marketplace: str | None = None
    rule_id: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class QueueEntry:
    """One decision waiting for review."""

    decision_id: str
    listing_id: str
    created_at: datetime
    category: str
    marketplace: str
    variant: str
    pending_images: list[str]
    rule_ids: list[str]


@dataclass(frozen=True)
class Queue:
    entries: list[QueueEntry]
    rule_counts: dict[str, int] = field(default_factory=dict)  # pending images per rule id


class ReviewDesk:
    def __init__(self, store: ReviewStore) -> None:
        self.store = store

    def queue(self, filters: QueueFilters = QueueFilters()) -> Queue:
        items = self.store.pending_items(category=filters.category,
                                         marketplace=filters.marketplace,
                                         variant=filters.variant)
        # Per rule before the rule filter, so the counts show where else the work is.
        counts = Counter(rule for item in items for rule in item["rule_ids"])
        if filters.rule_id:
            items = [item for item in items if filters.rule_id in item["rule_ids"]]
        entries: dict[str, QueueEntry] = {}
        for item in items:  # newest first already
            entry = entries.get(item["decision_id"])
            if entry is None:
                entry = entries[item["decision_id"]] = QueueEntry(
                    item["decision_id"], item["listing_id"], item["created_at"],
                    item["category"], item["marketplace"], item["variant"], [], [])
            entry.pending_images.append(item["image_id"])
            entry.rule_ids.extend(r for r in item["rule_ids"] if r not in entry.rule_ids)
        return Queue(list(entries.values()), dict(sorted(counts.items())))

    def decision(self, decision_id: str) -> list[dict[str, Any]]:
        """The decision's review items, each with `reviews` (its verdicts so far)."""
        items = self.store.decision_items(decision_id)
        if not items:
            raise CuratorError(f"no review items for decision {decision_id!r}",
                               code="not_found", status=404, field="decision_id")
        verdicts: dict[str, list[Review]] = {}
        for entry in self.store.reviews(decision_id=decision_id):
            verdicts.setdefault(entry.review.image_id, []).append(entry.review)
        for item in items:
            item["reviews"] = verdicts.get(item["image_id"], [])
        return items

    def record(self, decision_id: str, image_id: str, reviewer: str, action: str,
               rules_wrong: Sequence[str] = (), comment: str = "",
               now: datetime | None = None) -> Review:
        """Store a verdict (idempotent per decision, image and reviewer)."""
        if action not in REVIEW_ACTIONS:
            raise CuratorError(f"action must be one of {', '.join(REVIEW_ACTIONS)}",
                               code="invalid_request", status=422, field="action")
        items = {item["image_id"]: item for item in self.store.decision_items(decision_id)}
        item = items.get(image_id)
        if item is None:
            raise CuratorError(f"decision {decision_id!r} has no image {image_id!r} to review",
                               code="not_found", status=404, field="image_id")
        unknown = sorted(set(rules_wrong) - set(item["rule_ids"]))
        if unknown:
            raise CuratorError(f"rules not judged on this image: {', '.join(unknown)}",
                               code="invalid_request", status=422, field="rules_wrong")
        if len(comment) > MAX_COMMENT_CHARS:
            raise CuratorError(f"comment longer than {MAX_COMMENT_CHARS} characters",
                               code="invalid_request", status=422, field="comment")
        review = Review(decision_id, image_id, reviewer, action, now or datetime.now(UTC),
                        rules_wrong, comment.strip())
        self.store.record_review(review)
        return review

    def precision(self, since: datetime | None = None, until: datetime | None = None
                  ) -> PrecisionReport:
        until = checked_time(until, "until") or datetime.now(UTC)
        since = checked_time(since, "since") or until - DEFAULT_WINDOW
        if since >= until:
            raise CuratorError("since must be before until", code="invalid_request",
                               status=422, field="since")
        return precision_report(self.store.reviews(since, until), since, until)

    def purge(self, retention_days: float, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
        return self.store.purge(cutoff)


class ReadyStore(Protocol):
    """A store whose schema is made on first use (experiments.live.EnsuredStore)."""

    def ready(self) -> DecisionStore: ...


def purge_review_items(store: ReadyStore, settings: ReviewSettings) -> int:
    """The retention purge, as each ingress replica's outbox thread runs it by itself."""
    purged = ReviewDesk(store.ready().review).purge(settings.retention_days)
    if purged:
        logger.info("review queue: %d item(s) past %.0f days purged", purged,
                    settings.retention_days)
    return purged


def checked_time(moment: datetime | None, name: str) -> datetime | None:
    """`moment` in UTC (a naive time is taken as UTC); 422 naming `name` outside 2000-2100."""
    if moment is None:
        return None
    if not EARLIEST_YEAR <= moment.year < LATEST_YEAR:
        raise CuratorError(f"{name} must lie between {EARLIEST_YEAR} and {LATEST_YEAR}",
                           code="invalid_request", status=422, field=name)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
