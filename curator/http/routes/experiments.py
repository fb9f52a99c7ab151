"""GET /v1/experiments (live experiments, weights, canary state) and
GET /v1/experiments/{experiment_id}/report."""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from curator.contracts.ids import EXPERIMENT_ID_PATTERN
from curator.contracts.schemas import ExperimentsResponse
from curator.http.dependencies import Service

router = APIRouter()


@router.get("/v1/experiments", response_model=ExperimentsResponse,
            response_model_exclude_none=True)
async def experiments(service: Service) -> ExperimentsResponse:
    return await service.experiments()


@router.get("/v1/experiments/{experiment_id}/report")
async def experiment_report(
    service: Service, experiment_id: Annotated[str, Path(pattern=EXPERIMENT_ID_PATTERN)]
) -> dict[str, Any]:
    return await service.experiment_report(experiment_id)
