"""What the review pages share: the templates, the reviewer session as a dependency, the cookies,
CSRF checks, and the security headers every /review response carries.

Refusals: no session is 401 with an HTML page that says to log in (refused, never an empty
queue); a form post without its CSRF token is 403 `csrf_failed`.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from curator.contracts.errors import CuratorError
from curator.http.dependencies import Service

SESSION_COOKIE = "curator_review_session"
NONCE_COOKIE = "curator_review_login"  # binds the login form's CSRF token to this browser
STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

# No inline script or style anywhere: scripts and styles come from /review/static only, images
# from the thumbnail routes; forms post back here; nothing may frame the pages.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]

templates = Environment(loader=PackageLoader("curator.http", "templates"),
                        autoescape=select_autoescape(["html"]), trim_blocks=True,
                        lstrip_blocks=True)


class LoginRequired(CuratorError):
    status = 401
    code = "login_required"


class CsrfFailed(CuratorError):
    status = 403
    code = "csrf_failed"


@dataclass(frozen=True)
class ReviewerSession:
    name: str
    session_id: str


def base_path(request: Request) -> str:
    """Where this application is mounted (Serve's route prefix), for links in the pages."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(base=base_path(request), **context)
    return HTMLResponse(html, status_code=status)


def _enabled(service: Service) -> None:
    if not service.args.review.enabled:
        raise CuratorError("the review queue is not enabled on this service",
                           code="not_found", status=404)


def _reviewer(request: Request, service: Service) -> ReviewerSession:
    _enabled(service)
    found = service.review_sessions.reviewer(request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise LoginRequired("log in with a reviewer token first")
    return ReviewerSession(*found)


def optional_reviewer(request: Request, service: Service) -> ReviewerSession | None:
    """The session's reviewer, or None (for routes that also take another credential)."""
    if not service.args.review.enabled or SESSION_COOKIE not in request.cookies:
        return None
    found = service.review_sessions.reviewer(request.cookies.get(SESSION_COOKIE))
    return ReviewerSession(*found) if found else None


Reviewer = Annotated[ReviewerSession, Depends(_reviewer)]
ReviewEnabled = Depends(_enabled)


def check_csrf(service: Service, binding: str | None, token: str | None) -> None:
    if not service.review_sessions.csrf_ok(binding, token):
        raise CsrfFailed("the form's CSRF token is missing or wrong; reload the page")


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


class ReviewSecurityHeaders:
    """Adds the CSP and friends to every response under /review (the JSON API and /docs,
    whose page needs inline script, keep their own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _app_path(scope).startswith("/review"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _app_path(scope: Scope) -> str:
    """The path within the application (Starlette keeps the mount prefix in `path`)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", "")).rstrip("/")
    return path[len(root):] if root and path.startswith(root) else path


def install_review_pages(app: FastAPI) -> None:
    """The 401 page and the security headers; the routes are curator.http.routes.review."""
    app.add_middleware(ReviewSecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, error: LoginRequired) -> HTMLResponse:
        return render(request, "refused.html", status=401, message=error.message)
