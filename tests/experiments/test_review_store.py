"""The review queue's tables on both backends: items written once, reviews idempotent per
(decision, image, reviewer), the purge, reviewers and shared settings, the outbox path, and the
outcome types' CHECK widened on a store made before `overturned_by_review` existed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from experiments.outbox import Outbox
from experiments.records import CUSTOMER_OUTCOME_TYPES, OVERTURNED_BY_REVIEW, OutcomeRecord
from experiments.store import DecisionStore
from experiments.store_schema import outcomes, review_items, reviews
from tests.experiments.factories import T0 as OUTCOME_T0
from tests.experiments.review_factories import T0, THUMBNAIL, review, review_item


def test_items_are_written_once_and_pending_until_reviewed(store: DecisionStore) -> None:
    items = [review_item("d1"), review_item("d2", created_at=T0 + timedelta(minutes=1)),
             review_item("d2", "back", created_at=T0 + timedelta(minutes=1))]
    assert store.write_review_items(items) == 3
    assert store.write_review_items(items) == 0  # the outbox may deliver twice
    pending = store.review.pending_items()
    assert [(i["decision_id"], i["image_id"]) for i in pending] == [
        ("d2", "back"), ("d2", "front"), ("d1", "front")]
    assert "thumbnail" not in pending[0]
    assert store.review.thumbnail("d1", "front") == THUMBNAIL
    store.review.record_review(review("d1"))
    assert [i["decision_id"] for i in store.review.pending_items()] == ["d2", "d2"]
    assert store.review.pending_items(category="shoes") == []


def test_a_review_is_idempotent_per_decision_image_and_reviewer(store: DecisionStore) -> None:
    store.write_review_items([review_item("d1")])
    store.review.record_review(review("d1", action="reject"))
    store.review.record_review(review("d1", action="approve", comment="second look",
                                      rules_wrong=["main.composition.not_cropped"]))
    store.review.record_review(review("d1", reviewer="ben", action="reject"))
    with store.engine.connect() as conn:
        rows = conn.execute(select(reviews).order_by(reviews.c.reviewer)).all()
    assert [(r.reviewer, r.action, r.comment) for r in rows] == [
        ("ana", "approve", "second look"), ("ben", "reject", "")]
    [first, _] = store.review.reviews()
    assert first.review.rules_wrong == ["main.composition.not_cropped"]
    assert first.item["listing_id"] == "l-d1"


def test_purge_drops_old_thumbnails_and_unreviewed_items_and_keeps_recent_ones(
    store: DecisionStore,
) -> None:
    old, recent = T0 - timedelta(days=8), T0 - timedelta(days=1)
    store.write_review_items([
        review_item("old-reviewed", created_at=old, fixed_thumbnail=THUMBNAIL),
        review_item("old-pending", created_at=old),
        review_item("recent", created_at=recent, fixed_thumbnail=THUMBNAIL),
    ])
    store.review.record_review(review("old-reviewed"))
    assert store.review.purge(T0 - timedelta(days=7)) == 2
    with store.engine.connect() as conn:
        left = {r.decision_id: (r.thumbnail, r.fixed_thumbnail)
                for r in conn.execute(select(review_items))}
    assert left == {"old-reviewed": (None, None), "recent": (THUMBNAIL, THUMBNAIL)}
    # What the precision report reads of a reviewed item outlives its thumbnail.
    assert store.review.reviews()[0].item["rule_ids"] == ["main.composition.not_cropped"]
    assert store.review.purge(T0 - timedelta(days=7)) == 0


def test_reviewers_and_shared_settings(store: DecisionStore) -> None:
    store.review.add_reviewer("ana", "a" * 64)
    store.review.add_reviewer("ben", "b" * 64)
    assert store.review.reviewer_by_digest("a" * 64).name == "ana"  # type: ignore[union-attr]
    assert store.review.disable_reviewer("ana")
    assert not store.review.disable_reviewer("nobody")
    assert store.review.reviewer_by_digest("a" * 64) is None
    assert [(r.name, r.disabled) for r in store.review.reviewers()] == [
        ("ana", True), ("ben", False)]
    store.review.add_reviewer("ana", "c" * 64)  # a new token re-enables the account
    assert store.review.is_enabled("ana") and store.review.reviewer_by_digest("a" * 64) is None
    first = store.review.shared_value("k", lambda: "one")
    assert first == "one" and store.review.shared_value("k", lambda: "two") == "one"


def test_review_items_travel_through_the_outbox(store: DecisionStore, tmp_path: Path) -> None:
    purges: list[int] = []
    outbox = Outbox(tmp_path / "outbox.db", store, flush_interval_s=0.01,
                    housekeeping=lambda: purges.append(1))
    try:
        assert outbox.put_review_items([review_item("d1", fixed_thumbnail=THUMBNAIL)])
        assert outbox.flush(60)
    finally:
        outbox.close()
    assert store.review.thumbnail("d1", "front", fixed=True) == THUMBNAIL
    assert store.review.decision_items("d1")[0]["boxes"][0]["label"] == "overlay"
    assert purges, "the drain thread ran its housekeeping"


def test_an_old_store_accepts_the_new_outcome_type_once_opened(store_url: str) -> None:
    old = DecisionStore(store_url)
    old.create_schema()
    customer = ", ".join(f"'{kind}'" for kind in CUSTOMER_OUTCOME_TYPES)
    with old.engine.begin() as conn:  # the outcomes table as stores before issue 15 made it
        if old.dialect == "postgresql":
            conn.execute(text("ALTER TABLE outcomes DROP CONSTRAINT ck_outcomes_type"))
            conn.execute(text(f"ALTER TABLE outcomes ADD CONSTRAINT ck_outcomes_type "
                              f"CHECK (type IN ({customer}))"))
        else:
            conn.execute(text("DROP TABLE outcomes"))
            conn.execute(text(
                "CREATE TABLE outcomes (event_id VARCHAR PRIMARY KEY, type VARCHAR NOT NULL, "
                "occurred_at DATETIME NOT NULL, unit_id VARCHAR, decision_id VARCHAR, "
                "value FLOAT, received_at DATETIME NOT NULL, "
                f"CONSTRAINT ck_outcomes_type CHECK (type IN ({customer})), "
                "CONSTRAINT ck_outcomes_target CHECK (unit_id IS NOT NULL "
                "OR decision_id IS NOT NULL))"))
    old.write_outcomes([OutcomeRecord("e1", "click", OUTCOME_T0, unit_id="u1")])
    overturned = OutcomeRecord("e2", OVERTURNED_BY_REVIEW, OUTCOME_T0, decision_id="d1")
    with pytest.raises(IntegrityError):
        old.write_outcomes([overturned])
    old.close()

    store = DecisionStore(store_url)
    store.create_schema()
    store.create_schema()  # every replica does, at start-up
    assert store.write_outcomes([overturned]) == 1
    with store.engine.connect() as conn:
        assert sorted(r.event_id for r in conn.execute(select(outcomes))) == ["e1", "e2"]
    with store.engine.connect() as conn, pytest.raises(IntegrityError):  # still checked
        conn.execute(outcomes.insert().values(event_id="e3", type="bogus", unit_id="u",
                                              occurred_at=OUTCOME_T0, received_at=OUTCOME_T0))
    store.close()
