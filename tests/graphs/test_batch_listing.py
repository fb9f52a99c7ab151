"""graphs.batch_listing: a listing's manifest rows are checked as `POST /v1/assess` checks a
request, and refused with the API's error body. No Ray, no models."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from curator.contracts.errors import CuratorError
from curator.core.assessment import ListingAssessor
from curator.core.measured import FixedMeasurement, MeasuredImage
from graphs.batch_listing import assess_listing, listing_request
from rules import POLICY_DIR, load_policy_set
from rules.schema import FixRef


def row(image_id: str = "a", **columns: Any) -> dict[str, Any]:
    return {"listing_id": "L-1", "image_id": image_id, "category": "default",
            "marketplace": "US", "role": None, "path": f"/data/{image_id}.jpg", "url": None,
            "measured": MeasuredImage(image_id, error={"code": "corrupt_image", "message": "x"}),
            **columns}


REFUSED = {
    "bad-marketplace": ([row(marketplace="usa")], "marketplace"),
    "bad-image-id": ([row(image_id="../etc")], "images[0].image_id"),
    "long-url": ([row(path=None, url="https://cdn.example/" + "a" * 2048)], "images[0].url"),
    "rows-disagree": ([row("a"), row("b", category="home")], "category"),
}


@pytest.mark.parametrize("case", REFUSED, ids=REFUSED)
def test_the_api_would_refuse_it(case: str) -> None:
    rows, field = REFUSED[case]
    with pytest.raises(CuratorError) as refused:
        listing_request(rows)
    assert refused.value.code == "invalid_request"
    assert refused.value.field == field
    assert refused.value.message.startswith(field)


def test_a_refused_listing_is_answered_with_the_error_body() -> None:
    async def no_fixes(image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
        raise AssertionError("a refused listing is not assessed")

    rows = [row(f"i{n}") for n in range(3)]
    answer = json.loads(asyncio.run(assess_listing(
        ListingAssessor(load_policy_set(POLICY_DIR)), rows, no_fixes, max_images=2)))
    assert answer == {"listing_id": "L-1", "error": {
        "code": "too_many_images", "message": "a listing has at most 2 images, got 3",
        "field": "images"}}
