"""`curator reviewers` and `curator reviews`, and `curator eval --from-reviews`, on a SQLite
store; the labelled export is read back by the dev-set loader itself."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from curator.cli.main import main
from curator.core.evaluation import load_devset
from curator.core.reviewer_auth import token_digest
from experiments.store import DecisionStore
from experiments.store_schema import outcomes
from tests.experiments.review_factories import T0, review, review_item

RULE = "main.composition.not_cropped"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = DecisionStore(url)
    store.create_schema()
    store.write_review_items([review_item("d1"), review_item("d2"), review_item("d3")])
    store.review.record_review(review("d1", reviewed_at=T0 + timedelta(hours=1),
                                      rules_wrong=[RULE], comment="shadow"))
    store.review.record_review(review("d2", reviewed_at=T0 + timedelta(hours=2),
                                      action="reject"))
    store.close()
    return url


def test_reviewers_add_list_disable(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reviewers", "add", "ana", "--store", store_url]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    store = DecisionStore(store_url)
    assert store.review.reviewer_by_digest(token_digest(token)).name == "ana"  # type: ignore[union-attr]
    assert main(["reviewers", "list", "--store", store_url]) == 0
    assert capsys.readouterr().out.startswith("ana\tenabled")
    assert main(["reviewers", "disable", "ana", "--store", store_url]) == 0
    assert store.review.reviewer_by_digest(token_digest(token)) is None
    assert main(["reviewers", "disable", "bob", "--store", store_url]) == 1


def test_eval_from_reviews_prints_the_precision_report(
    store_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    window = ["--since", "2026-03-01T00:00:00+00:00", "--until", "2026-03-03T00:00:00+00:00"]
    assert main(["eval", "--from-reviews", "--store", store_url, *window]) == 0
    out = capsys.readouterr().out
    assert "from 2 review(s)" in out
    [row] = [line for line in out.splitlines() if line.startswith(RULE)]
    assert row.split()[1:4] == ["1", "1", "0.500"]
    assert main(["eval", "--from-reviews", "--store", store_url, "--since", "1990-01-01"]) == 2


def test_export_labels_writes_a_dev_set_the_loader_reads(store_url: str, tmp_path: Path) -> None:
    root = tmp_path / "labelled"
    assert main(["reviews", "export-labels", str(root), "--store", store_url]) == 0
    images = {image.image: image for image in load_devset(root)}
    assert sorted(images) == ["reviews/d1-front.jpg", "reviews/d2-front.jpg"]
    approved, rejected = images["reviews/d1-front.jpg"], images["reviews/d2-front.jpg"]
    assert approved.labels["main_image_compliant"] and not rejected.labels["main_image_compliant"]
    assert approved.labels["white_background"] and approved.group == "review:l-d1"
    assert "shadow" in approved.notes


def test_export_outcomes_stores_each_overturn_once(store_url: str) -> None:
    for _ in range(2):
        assert main(["reviews", "export-outcomes", "--store", store_url]) == 0
    with DecisionStore(store_url).engine.connect() as conn:
        rows = conn.execute(select(outcomes)).all()
    assert [(r.type, r.decision_id, r.unit_id) for r in rows] == [
        ("overturned_by_review", "d1", "l-d1")]


def test_purge_drops_old_thumbnails(store_url: str) -> None:
    # The items were made at T0 (2026-03-02): far past a one-day retention by now.
    assert main(["reviews", "purge", "--retention-days", "1", "--store", store_url]) == 0
    store = DecisionStore(store_url)
    assert store.review.thumbnail("d1", "front") is None
    assert store.review.pending_items() == []  # d3, never reviewed, is gone
