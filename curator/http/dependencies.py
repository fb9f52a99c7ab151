"""What the routes ask FastAPI for: the replica's CuratorService, and the API key of the
outcome endpoint."""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
from typing import Annotated

from fastapi import Depends, Header, Request

from curator.contracts.errors import CuratorError
from curator.core.service import CuratorService
from curator.http.shared import require_api_key


def _service(request: Request) -> CuratorService:
    service: CuratorService = request.app.state.service
    return service


# The replica's core, set on the app that curator.http.app.build_app made for it.
Service = Annotated[CuratorService, Depends(_service)]


def _outcome_caller(
    service: Service,
    x_api_key: Annotated[str | None, Header(description="A key whose SHA-256 the service "
                                            "lists in outcome_key_sha256")] = None,
) -> None:
    """503 while outcomes are off, 401 unless the key is one of the configured ones. A route
    that depends on this reads its body only afterwards: an anonymous client never gets a
    parser's attention."""
    if not service.args.outcome_key_sha256:
        raise CuratorError("outcome events are not enabled on this service "
                           "(no outcome_key_sha256 configured)", code="outcomes_disabled",
                           status=503)
    require_api_key(x_api_key, service.args.outcome_key_sha256)


OutcomeCaller = Depends(_outcome_caller)
