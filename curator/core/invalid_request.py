"""How a request that fails validation is described: the online service and the batch mode answer
`invalid_request` with the same field and message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "images", 0, "data") -> "images[0].data"
    path = ""
    for part in location:
        if part in ("body", "query", "path", "form"):
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def describe_invalid_request(errors: Sequence[Any]) -> tuple[str, str]:
    """(field, message) of an `invalid_request` answer from pydantic's errors: the first problem,
    and how many more there are. Shared with the batch mode, which answers the same way."""
    first = errors[0]
    field = _field_path(first.get("loc", ()))
    message = f"{field}: {first.get('msg', 'invalid value')}"
    extra = len(errors) - 1
    if extra:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return field, message
