"""HTTP plumbing shared by the ingress: the body-size guard, the one boundary around reading a
request, and the JSON error handlers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from curator.contracts.errors import CuratorError
from curator.core.invalid_request import describe_invalid_request

logger = logging.getLogger("ray.serve")


def error_response(status: int, code: str, message: str, **where: str | None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({key: value for key, value in where.items() if value is not None})
    return JSONResponse(status_code=status, content={"error": body})


def _too_large(max_bytes: int) -> StarletteHTTPException:
    return StarletteHTTPException(413, f"request body exceeds {max_bytes} bytes")


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413 — by Content-Length up front, and by counting
    while streaming when the client sends none (chunked), so memory stays bounded either way.

    FastAPI's own `max_body_size` answers in its default error format; this one keeps the
    service's JSON error contract. The overflow is raised as a 413 HTTPException because FastAPI
    turns any other exception met while reading a body into a generic 400.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except StarletteHTTPException as error:
            if error.status_code != 413 or response_started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "request_too_large", f"request body exceeds {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class UnreadableRequest(CuratorError):
    """Reading the request failed in a way no validation rule names: still the client's request,
    so a 400 with a stable code, never a 500."""

    status = 400
    code = "unreadable_request"


@contextmanager
def reading_request(what: str) -> Iterator[None]:
    """The one exception boundary around reading a request, after FastAPI's own parsing: JSON,
    validation through the request models, base64, form fields, uploaded files. A
    `CuratorError` passes as it is; pydantic's errors become 422 `invalid_request` with the
    field; anything else becomes 400 `unreadable_request` (logged, since it is a gap in the
    validation rules). Whatever is raised after the block is a server error again."""
    try:
        yield
    except CuratorError:
        raise
    except (ValidationError, RequestValidationError) as error:
        field, message = describe_invalid_request(error.errors())
        raise CuratorError(message, code="invalid_request", status=422, field=field) from None
    except Exception as error:
        logger.warning("unreadable %s: %r", what, error, exc_info=True)
        raise UnreadableRequest(f"the {what} could not be read: {type(error).__name__}") from None


def parse_json_body(model: type[BaseModel], body: bytes) -> Any:
    """`body` as `model`, for a route that reads its body itself (after checking the caller):
    400 `invalid_json` when it is no JSON, 422 `invalid_request` when it does not validate."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and undecodable bytes alike
        raise CuratorError("request body is not valid JSON", code="invalid_json") from None
    with reading_request("request body"):
        return model.model_validate(data)


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a route that reads its body itself, with `model`'s schema
    inlined (FastAPI lists in components only the models its routes take as parameters)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": inline(schema)}}}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CuratorError)
    async def _curator_error(_: Request, error: CuratorError) -> JSONResponse:
        return JSONResponse(status_code=error.status, content={"error": error.to_dict()},
                            headers=error.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", "request body is not valid JSON")
        field, message = describe_invalid_request(error.errors())
        return error_response(422, "invalid_request", message, field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # 400: FastAPI could not parse the body at all (a broken multipart stream, ...).
        code = {400: "unreadable_request", 404: "not_found", 405: "method_not_allowed",
                413: "request_too_large"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on the request path")
        return error_response(500, "internal_error", "internal error; the request was not assessed")


def require_api_key(key: str | None, sha256_digests: Sequence[str]) -> None:
    """401 unless `key` hashes to one of the configured digests (keys never sit in a config).
    Every digest is compared, each in constant time."""
    given = hashlib.sha256((key or "").encode()).hexdigest()
    matches = [hmac.compare_digest(given, digest) for digest in sha256_digests]
    if key is None or not any(matches):
        raise CuratorError("a valid X-API-Key header is required", code="unauthorized",
                           status=401, field="X-API-Key")
