"""GET /v1/policies/{category}/{marketplace}: the effective, resolved rule set."""

from typing import Annotated

from fastapi import APIRouter, Path

from curator.contracts.ids import CATEGORY_PATTERN, MARKETPLACE_PATTERN
from curator.contracts.schemas import PolicyResponse
from curator.http.dependencies import Service

router = APIRouter()


@router.get(
    "/v1/policies/{category}/{marketplace}",
    response_model=PolicyResponse,
    response_model_exclude_none=True,
)
async def policy(
    service: Service,
    category: Annotated[str, Path(pattern=CATEGORY_PATTERN)],
    marketplace: Annotated[str, Path(pattern=MARKETPLACE_PATTERN)],
) -> PolicyResponse:
    return service.policy(category, marketplace)
