"""GET /v1/rules/precision: per rule, how often reviewers upheld and overturned its verdicts in
a time window, with a Wilson 95% interval. For a reviewer's session or an outcome API key."""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query

from curator.contracts.errors import CuratorError
from curator.contracts.schemas import ErrorResponse
from curator.core.review_precision import PrecisionReport
from curator.http.dependencies import Service
from curator.http.review_pages import ReviewerSession, optional_reviewer
from curator.http.shared import require_api_key

router = APIRouter()


@router.get("/v1/rules/precision", response_model=PrecisionReport,
            responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
async def rule_precision(
    service: Service,
    session: Annotated[ReviewerSession | None, Depends(optional_reviewer)],
    since: Annotated[str | None, Query(description="ISO 8601; default: until - 30 days")] = None,
    until: Annotated[str | None, Query(description="ISO 8601; default: now")] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> PrecisionReport:
    if session is None:
        require_api_key(x_api_key, service.args.outcome_key_sha256)
    desk = service.review_desk
    return await asyncio.to_thread(desk.precision, _moment(since, "since"),
                                   _moment(until, "until"))


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CuratorError(f"{name} is not an ISO 8601 time", code="invalid_request",
                           status=422, field=name) from None
