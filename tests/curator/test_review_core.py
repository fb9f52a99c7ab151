"""The review queue's plain parts: Wilson intervals against published values, the verdict
counting, thumbnails made by reduced-scale decoding, and which images need a person."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image

from curator.core.review_capture import make_thumbnail
from curator.core.review_desk import checked_time
from curator.core.review_precision import count_verdicts, wilson_interval
from experiments.review_records import RulePrecisionCounts
from experiments.review_store import ReviewedItem
from tests.experiments.review_factories import review
from tests.support import synthetic


@pytest.mark.parametrize(("upheld", "n", "low", "high"), [
    # Wilson score intervals at 95% (Newcombe 1998, Table I; and the formula by hand).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (20, 20, 0.8389, 1.0),
], ids=["81-of-263", "15-of-148", "none-of-20", "all-of-20"])
def test_wilson_interval(upheld: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(upheld, n)
    assert interval is not None
    assert interval == pytest.approx((low, high), abs=1e-4)


def test_no_reviews_give_no_interval() -> None:
    assert wilson_interval(0, 0) is None


def test_a_review_upholds_every_rule_it_does_not_mark_wrong() -> None:
    item = {"rule_ids": ["a", "b"]}
    reviewed = [ReviewedItem(review("d1", rules_wrong=["a"]), item),
                ReviewedItem(review("d2"), item),
                ReviewedItem(review("d3", rules_wrong=["b"]), {"rule_ids": None})]  # purged
    assert count_verdicts(reviewed) == [RulePrecisionCounts("a", 1, 1),
                                        RulePrecisionCounts("b", 2, 0)]


def test_thumbnails_are_small_jpegs_of_the_whole_picture() -> None:
    data = synthetic.to_jpeg_bytes(synthetic.render_product(size=(2400, 1600), seed=5))
    made = make_thumbnail(data, 384)
    assert made is not None
    thumbnail, size = made
    assert size == (2400, 1600)
    with Image.open(io.BytesIO(thumbnail)) as image:
        assert image.format == "JPEG" and image.size == (384, 256)
    assert len(thumbnail) < 40_000
    png = make_thumbnail(synthetic.to_png_bytes(synthetic.render_product(size=(500, 500))), 384)
    assert png is not None and png[1] == (500, 500)
    assert make_thumbnail(b"not an image", 384) is None


def test_times_outside_2000_to_2100_are_refused_by_name() -> None:
    with pytest.raises(Exception, match="until must lie between") as error:
        checked_time(datetime(2101, 1, 1, tzinfo=UTC), "until")
    assert error.value.field == "until"  # type: ignore[attr-defined]
    assert checked_time(datetime(2026, 1, 1), "since") == datetime(2026, 1, 1, tzinfo=UTC)
