"""POST /v1/outcomes: outcome events (impressions, clicks, purchases, returns), by API key."""

from fastapi import APIRouter, Request

from curator.contracts.schemas import ErrorResponse, OutcomesRequest, OutcomesResponse
from curator.http.dependencies import OutcomeCaller, Service
from curator.http.shared import openapi_body, parse_json_body, reading_request
from experiments.records import OutcomeRecord

router = APIRouter()


@router.post("/v1/outcomes", response_model=OutcomesResponse, status_code=202,
             responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
             openapi_extra=openapi_body(OutcomesRequest), dependencies=[OutcomeCaller])
async def outcomes(http_request: Request, service: Service) -> OutcomesResponse:
    # The body is read only once the caller is known (OutcomeCaller): FastAPI would parse a
    # declared body before checking the key.
    request: OutcomesRequest = parse_json_body(OutcomesRequest, await http_request.body())
    with reading_request("outcome events"):
        records = [
            OutcomeRecord(event_id=e.event_id, type=e.type, occurred_at=e.time,
                          unit_id=e.unit_id, decision_id=e.decision_id, value=e.value)
            for e in request.events
        ]
    service.record_outcomes(records)
    return OutcomesResponse(accepted=len(records))
