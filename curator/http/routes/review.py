"""The review queue's pages (issue 15): log in, the queue, a decision, its thumbnails, and the
verdict form. HTML from curator/http/templates; the little JavaScript and CSS they use from
curator/http/static. Sync routes: FastAPI runs them on its thread pool, off the event loop,
since each reads the store."""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from curator.contracts.errors import CuratorError
from curator.core.review_desk import QueueFilters
from curator.http.dependencies import Service
from curator.http.review_pages import (
    NONCE_COOKIE,
    SESSION_COOKIE,
    STATIC_DIR,
    STATIC_TYPES,
    ReviewEnabled,
    Reviewer,
    base_path,
    check_csrf,
    new_nonce,
    render,
    set_cookie,
)
from experiments.review_records import REVIEW_ACTIONS

router = APIRouter(prefix="/review", include_in_schema=False)

Text = Annotated[str | None, Form()]


@router.get("/login", dependencies=[ReviewEnabled])
def login_form(request: Request, service: Service) -> HTMLResponse:
    nonce = request.cookies.get(NONCE_COOKIE) or new_nonce()
    response = render(request, "login.html", csrf=service.review_sessions.csrf_token(
        f"login:{nonce}"))
    set_cookie(request, response, NONCE_COOKIE, nonce)
    return response


@router.post("/login", dependencies=[ReviewEnabled])
def log_in(request: Request, service: Service, token: Text = None, csrf: Text = None
           ) -> Response:
    nonce = request.cookies.get(NONCE_COOKIE)
    check_csrf(service, f"login:{nonce}" if nonce else None, csrf)
    session = service.review_sessions.log_in(token or "") if token else None
    if session is None:
        return render(request, "login.html", status=401, error="That token is not valid.",
                      csrf=csrf)
    response = RedirectResponse(f"{base_path(request)}/review", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, session,
               max_age=int(service.args.review.session_hours * 3600))
    return response


@router.post("/logout")
def log_out(request: Request, service: Service, reviewer: Reviewer, csrf: Text = None
            ) -> Response:
    check_csrf(service, reviewer.session_id, csrf)
    response = RedirectResponse(f"{base_path(request)}/review/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("")
def queue(
    request: Request, service: Service, reviewer: Reviewer,
    category: Annotated[str | None, Query(max_length=64)] = None,
    marketplace: Annotated[str | None, Query(max_length=16)] = None,
    rule_id: Annotated[str | None, Query(max_length=128)] = None,
    variant: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    filters = QueueFilters(category or None, marketplace or None, rule_id or None,
                           variant or None)
    return render(request, "queue.html", reviewer=reviewer.name,
                  queue=service.review_desk.queue(filters), filters=filters,
                  csrf=service.review_sessions.csrf_token(reviewer.session_id))


@router.get("/decisions/{decision_id}")
def decision(request: Request, service: Service, reviewer: Reviewer, decision_id: str
             ) -> HTMLResponse:
    items = service.review_desk.decision(decision_id)
    return render(request, "detail.html", reviewer=reviewer.name, decision_id=decision_id,
                  items=items, selection=items[0]["selection"],
                  csrf=service.review_sessions.csrf_token(reviewer.session_id))


@router.get("/thumbnails/{decision_id}/{image_id}")
def thumbnail(service: Service, reviewer: Reviewer, decision_id: str, image_id: str,
              fixed: bool = False) -> Response:
    data = service.review_desk.store.thumbnail(decision_id, image_id, fixed=fixed)
    if data is None:
        raise CuratorError("no thumbnail (never made, or purged)", code="not_found", status=404)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.post("/decisions/{decision_id}/images/{image_id}")
async def verdict(request: Request, service: Service, reviewer: Reviewer, decision_id: str,
                  image_id: str) -> Response:
    form = await request.form()
    check_csrf(service, reviewer.session_id, _text(form.get("csrf")))
    action = _text(form.get("action")) or ""
    if action not in REVIEW_ACTIONS:
        raise CuratorError(f"action must be one of {', '.join(REVIEW_ACTIONS)}",
                           code="invalid_request", status=422, field="action")
    rules_wrong = [value for value in form.getlist("rules_wrong") if isinstance(value, str)]
    desk = service.review_desk
    await asyncio.to_thread(desk.record, decision_id, image_id, reviewer.name, action,
                            rules_wrong, _text(form.get("comment")) or "")
    pending = await asyncio.to_thread(desk.queue)
    still = any(entry.decision_id == decision_id for entry in pending.entries)
    target = f"/review/decisions/{decision_id}" if still else "/review"
    return RedirectResponse(f"{base_path(request)}{target}", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    path = STATIC_DIR / name
    media_type = STATIC_TYPES.get(path.suffix)
    if media_type is None or path.name != name or not path.is_file():
        raise CuratorError("no such file", code="not_found", status=404)
    return Response(path.read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=300"})


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
