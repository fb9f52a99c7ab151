"""The ingress's FastAPI app, built per replica around its CuratorService: the routers, the
JSON error handlers and the request body limit. Nothing module-level is changed, so two apps
(two replicas in one process, or a test beside a replica) never share state."""

from __future__ import annotations

from fastapi import FastAPI

import curator
from curator.contracts.schemas import ErrorResponse
from curator.core.service import CuratorService
from curator.http.review_pages import install_review_pages
from curator.http.routes import assess, experiments, health, outcomes, policies, precision, review
from curator.http.shared import BodySizeLimit, install_error_handlers

# In the order of the API's documentation (/docs).
ROUTERS = (assess.router, health.router, policies.router, outcomes.router, experiments.router,
           precision.router, review.router)


def build_app(service: CuratorService) -> FastAPI:
    app = FastAPI(
        title="curator",
        version=curator.__version__,
        description="Product-image curation: rules, detection, actions, effectiveness.",
        responses={
            400: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            429: {"model": ErrorResponse, "description": "Overloaded: retry after Retry-After"},
        },
    )
    install_error_handlers(app)
    # The 401 page of the review pages (LoginRequired is matched before CuratorError).
    install_review_pages(app)
    app.add_middleware(BodySizeLimit, max_bytes=service.args.limits.max_request_bytes)
    for router in ROUTERS:
        app.include_router(router)
    app.state.service = service
    return app
