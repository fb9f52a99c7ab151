"""Typed errors. Each carries an HTTP status and a stable machine-readable code.

The ingress turns a `CuratorError` into JSON with one handler; a per-image `ImageError` becomes the
`error` of that image in an otherwise successful listing answer.
"""

from __future__ import annotations

from typing import Any


class CuratorError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        field: str | None = None,
        image_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.field = field
        self.image_id = image_id

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the JSON body (Retry-After, ...)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.image_id is not None:
            body["image_id"] = self.image_id
        return body

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Ray replicas); keep every attribute on the way.
        return (_rebuild, (type(self), self.message, self.code, self.status, self.field,
                           self.image_id))


def _rebuild(cls: type[CuratorError], message: str, code: str, status: int,
             field: str | None, image_id: str | None) -> CuratorError:
    return cls(message, code=code, status=status, field=field, image_id=image_id)


class ImageError(CuratorError):
    """One image could not be assessed; the rest of the listing still is."""

    status = 422
    code = "invalid_image"


class RequestTooLarge(CuratorError):
    status = 413
    code = "request_too_large"


class PolicyError(CuratorError):
    """A policy file is invalid; names the file and the rule."""

    status = 500
    code = "invalid_policy"
