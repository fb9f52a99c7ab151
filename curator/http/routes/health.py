"""GET /healthz (Serve's and the load balancer's probe) and GET /v1/version."""

from fastapi import APIRouter

from curator.contracts.schemas import HealthResponse, VersionResponse
from curator.http.dependencies import Service

router = APIRouter()


@router.get("/healthz", response_model=HealthResponse)
async def healthz(service: Service) -> HealthResponse:
    return await service.health()


@router.get("/v1/version", response_model=VersionResponse)
async def version(service: Service) -> VersionResponse:
    return await service.version()
