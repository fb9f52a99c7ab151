"""The review queue's tables on the decision store's database: review items (written by the
outbox), reviews, reviewer accounts and the settings every replica shares.

Same two backends as `experiments.store`, same rule: writes are idempotent (an item by
(decision, image); a review by (decision, image, reviewer), where a repeat replaces the verdict),
and reads return plain values, so SQLite and PostgreSQL answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from experiments.review_records import Review, ReviewItem
from experiments.store_schema import review_items, reviewers, reviews, shared_settings

# Newest pending items the queue reads at most: a page, not the whole backlog.
QUEUE_READ_LIMIT = 5000

# Every column of an item but the thumbnails, which only the image routes read.
_ITEM_COLUMNS = [c for c in review_items.columns if c.name not in ("thumbnail", "fixed_thumbnail")]


@dataclass(frozen=True)
class Reviewer:
    name: str
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class ReviewedItem:
    """A review and the item it judged (None: the item was purged before the review was read)."""

    review: Review
    item: dict[str, Any]


class ReviewStore:
    """Review items, reviews, reviewers and shared settings on `engine` (a DecisionStore's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # -- items ---------------------------------------------------------------------------------

    def write_items(self, items: Sequence[ReviewItem]) -> int:
        """Insert review items, ignoring (decision, image) pairs already stored."""
        if not items:
            return 0
        rows = sorted((_item_row(item) for item in items),
                      key=lambda row: (row["decision_id"], row["image_id"]))
        statement = (self._insert(review_items)
                     .on_conflict_do_nothing(index_elements=["decision_id", "image_id"])
                     .returning(review_items.c.decision_id))
        with self.engine.begin() as conn:
            return len(conn.execute(statement, rows).all())

    def pending_items(self, *, category: str | None = None, marketplace: str | None = None,
                      variant: str | None = None) -> list[dict[str, Any]]:
        """Items no reviewer has judged yet, newest first, without thumbnails."""
        reviewed = exists().where(and_(reviews.c.decision_id == review_items.c.decision_id,
                                       reviews.c.image_id == review_items.c.image_id))
        query = select(*_ITEM_COLUMNS).where(~reviewed)
        for column, value in (("category", category), ("marketplace", marketplace),
                              ("variant", variant)):
            if value:
                query = query.where(review_items.c[column] == value)
        query = query.order_by(review_items.c.created_at.desc(), review_items.c.decision_id,
                               review_items.c.image_id).limit(QUEUE_READ_LIMIT)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def decision_items(self, decision_id: str) -> list[dict[str, Any]]:
        """Every item of one decision (without thumbnails), in image id order."""
        query = (select(*_ITEM_COLUMNS, review_items.c.fixed_thumbnail.is_not(None)
                        .label("has_fixed_thumbnail"))
                 .where(review_items.c.decision_id == decision_id)
                 .order_by(review_items.c.created_at, review_items.c.image_id))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def thumbnail(self, decision_id: str, image_id: str, *, fixed: bool = False) -> bytes | None:
        column = review_items.c.fixed_thumbnail if fixed else review_items.c.thumbnail
        query = select(column).where(review_items.c.decision_id == decision_id,
                                     review_items.c.image_id == image_id)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return bytes(value) if value is not None else None

    def purge(self, older_than: datetime) -> int:
        """Drop thumbnails made before `older_than`, and the items nobody reviewed by then (no
        longer worth a person's time); reviewed items keep what the precision report and the
        labelled export read. Returns the items touched."""
        old = review_items.c.created_at < older_than
        reviewed = exists().where(and_(reviews.c.decision_id == review_items.c.decision_id,
                                       reviews.c.image_id == review_items.c.image_id))
        with self.engine.begin() as conn:
            dropped = conn.execute(delete(review_items).where(old, ~reviewed)).rowcount
            blanked = conn.execute(
                update(review_items)
                .where(old, (review_items.c.thumbnail.is_not(None))
                       | (review_items.c.fixed_thumbnail.is_not(None)))
                .values(thumbnail=None, fixed_thumbnail=None)).rowcount
        return int(dropped or 0) + int(blanked or 0)

    # -- reviews -------------------------------------------------------------------------------

    def record_review(self, review: Review) -> None:
        """Store a verdict; the same reviewer's earlier verdict on the image is replaced."""
        row = {"decision_id": review.decision_id, "image_id": review.image_id,
               "reviewer": review.reviewer, "action": review.action,
               "rules_wrong": list(review.rules_wrong), "comment": review.comment,
               "reviewed_at": review.reviewed_at}
        changed = {key: row[key] for key in ("action", "rules_wrong", "comment", "reviewed_at")}
        statement = self._insert(reviews).values(**row).on_conflict_do_update(
            index_elements=["decision_id", "image_id", "reviewer"], set_=changed)
        with self.engine.begin() as conn:
            conn.execute(statement)

    def reviews(self, since: datetime | None = None, until: datetime | None = None,
                decision_id: str | None = None) -> list[ReviewedItem]:
        """Reviews made in [since, until), oldest first, each with its item."""
        query = (select(reviews, *[c.label(f"item_{c.name}") for c in _ITEM_COLUMNS])
                 .select_from(reviews.outerjoin(review_items, and_(
                     reviews.c.decision_id == review_items.c.decision_id,
                     reviews.c.image_id == review_items.c.image_id)))
                 .order_by(reviews.c.reviewed_at, reviews.c.decision_id, reviews.c.image_id,
                           reviews.c.reviewer))
        if since is not None:
            query = query.where(reviews.c.reviewed_at >= since)
        if until is not None:
            query = query.where(reviews.c.reviewed_at < until)
        if decision_id is not None:
            query = query.where(reviews.c.decision_id == decision_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        result = []
        for row in rows:
            values = row._mapping
            review = Review(values["decision_id"], values["image_id"], values["reviewer"],
                            values["action"], values["reviewed_at"], values["rules_wrong"],
                            values["comment"])
            item = {c.name: values[f"item_{c.name}"] for c in _ITEM_COLUMNS}
            result.append(ReviewedItem(review, item))
        return result

    # -- reviewers and shared settings ---------------------------------------------------------

    def add_reviewer(self, name: str, token_sha256: str) -> None:
        """A new reviewer, or a new token (and re-enabled account) for an existing one."""
        row = {"name": name, "token_sha256": token_sha256, "disabled": False,
               "created_at": datetime.now(UTC)}
        statement = self._insert(reviewers).values(**row).on_conflict_do_update(
            index_elements=["name"], set_={"token_sha256": token_sha256, "disabled": False})
        with self.engine.begin() as conn:
            conn.execute(statement)

    def reviewers(self) -> list[Reviewer]:
        query = select(reviewers.c.name, reviewers.c.disabled, reviewers.c.created_at
                       ).order_by(reviewers.c.name)
        with self.engine.connect() as conn:
            return [Reviewer(row.name, bool(row.disabled), row.created_at)
                    for row in conn.execute(query)]

    def disable_reviewer(self, name: str) -> bool:
        """False when there is no such reviewer."""
        with self.engine.begin() as conn:
            changed = conn.execute(update(reviewers).where(reviewers.c.name == name)
                                   .values(disabled=True)).rowcount
        return bool(changed)

    def reviewer_by_digest(self, token_sha256: str) -> Reviewer | None:
        """The enabled reviewer whose token hashes to `token_sha256`."""
        query = select(reviewers.c.name, reviewers.c.disabled, reviewers.c.created_at).where(
            reviewers.c.token_sha256 == token_sha256, reviewers.c.disabled.is_(False))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return Reviewer(row.name, bool(row.disabled), row.created_at) if row else None

    def is_enabled(self, name: str) -> bool:
        query = select(reviewers.c.disabled).where(reviewers.c.name == name)
        with self.engine.connect() as conn:
            disabled = conn.execute(query).scalar()
        return disabled is not None and not disabled

    def shared_value(self, key: str, make: Callable[[], str]) -> str:
        """The value under `key`; the first caller's `make()` wins when several race."""
        with self.engine.begin() as conn:
            conn.execute(self._insert(shared_settings).values(key=key, value=make())
                         .on_conflict_do_nothing(index_elements=["key"]))
            return str(conn.execute(select(shared_settings.c.value)
                                    .where(shared_settings.c.key == key)).scalar_one())


def _item_row(item: ReviewItem) -> dict[str, Any]:
    return {
        "decision_id": item.decision_id, "image_id": item.image_id,
        "listing_id": item.listing_id, "created_at": item.created_at,
        "category": item.category, "marketplace": item.marketplace, "variant": item.variant,
        "action": item.action, "rule_ids": list(item.rule_ids),
        "violations": _plain(item.violations), "boxes": _plain(item.boxes),
        "selection": _plain(item.selection), "labels": _plain(item.labels),
        "fix": _plain(item.fix) if item.fix is not None else None,
        "image_size": list(item.image_size),
        "source_url": item.source_url, "thumbnail": item.thumbnail,
        "fixed_thumbnail": item.fixed_thumbnail,
    }


def _plain(value: Any) -> Any:
    """JSON-ready copies of mappings and sequences (records hold read-only views)."""
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or (isinstance(value, Iterable)
                                           and not isinstance(value, str | bytes)):
        return [_plain(v) for v in value]
    return value
