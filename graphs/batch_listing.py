"""One listing of the batch mode, from its manifest rows to the JSON the HTTP API would answer.

The rows are checked as `POST /v1/assess` checks a request (the same schema, the same listing
limits), so a listing the API would refuse gets the API's error body, with its `listing_id`:
`{"listing_id": ..., "error": {"code", "message", "field"}}`. Every other listing gets the
`AssessResponse` of `ListingAssessor.assess`, without the fixed images' bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from curator.contracts.errors import CuratorError
from curator.contracts.schemas import AssessRequest
from curator.core.assessment import ListingAssessor
from curator.core.image_jobs import ImageJob, check_listing
from curator.core.invalid_request import describe_invalid_request
from curator.core.measured import Fixer

Row = Mapping[str, Any]  # one manifest row: its columns and its `measured` MeasuredImage


async def assess_listing(assessor: ListingAssessor, rows: Sequence[Row], fixer: Fixer,
                         max_images: int) -> str:
    """The listing's answer as one line of JSON; `rows` in the manifest's order."""
    listing_id = str(rows[0]["listing_id"])
    try:
        request = listing_request(rows)
        check_listing([ImageJob(image.image_id, image.role) for image in request.images],
                      max_images)
    except CuratorError as error:
        return json.dumps({"listing_id": listing_id, "error": error.to_dict()})
    response = await assessor.assess(
        listing_id=request.listing_id,
        category=request.category,
        marketplace=request.marketplace,
        images=[row["measured"] for row in rows],
        roles=[image.role for image in request.images],
        fixer=fixer,
        include_fixed_images=False,
    )
    return response.model_dump_json(exclude_none=True)


def listing_request(rows: Sequence[Row]) -> AssessRequest:
    """The request the rows stand for, validated as the API validates one; `CuratorError`
    (`invalid_request`, naming the field) where the API would answer 422."""
    for name in ("category", "marketplace"):
        values = {str(row[name]) for row in rows}
        if len(values) > 1:
            raise CuratorError(f"{name}: the listing's rows disagree ({', '.join(sorted(values))})",
                               code="invalid_request", status=422, field=name)
    first = rows[0]
    body = {
        "listing_id": str(first["listing_id"]),
        "category": str(first["category"]),
        "marketplace": str(first["marketplace"]),
        # The file itself is read by the pipeline: an empty `data` stands for it, as in the
        # multipart route; a URL is checked as the JSON route checks it.
        "images": [{"image_id": str(row["image_id"]), "role": row["role"],
                    **({"url": row["url"]} if row.get("url") else {"data": ""})}
                   for row in rows],
    }
    try:
        return AssessRequest.model_validate(body)
    except ValidationError as exc:
        field, message = describe_invalid_request(exc.errors())
        raise CuratorError(message, code="invalid_request", status=422, field=field) from None
