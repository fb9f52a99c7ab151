"""Image files for the batch mode: a local path, or a URL fetched exactly as `images[].url` is
online (curator.core.fetch: http(s) only, no private addresses, size cap, redirects checked). What
cannot be read becomes the image's error, with the API's codes plus `file_unreadable`."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from curator.contracts.errors import ImageError
from curator.core.fetch import ImageFetcher
from curator.core.measured import MeasuredImage, stage_failed
from curator.core.settings import InputLimits, UrlFetchSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ImageSource:
    """One per actor: its fetcher's connection pool lives on the actor's own event loop."""

    def __init__(self, limits: InputLimits, url_fetch: UrlFetchSettings) -> None:
        self._max_bytes = limits.max_image_bytes
        self._fetcher = ImageFetcher(url_fetch, max_bytes=limits.max_image_bytes)
        self._loop = asyncio.new_event_loop()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on this source's loop (where its fetches must run)."""
        return self._loop.run_until_complete(work)

    async def read(self, image_id: str, path: str | None, url: str | None
                   ) -> bytes | MeasuredImage:
        """The file, or a `MeasuredImage` carrying why there is none."""
        try:
            if url is not None:
                return await self._fetcher.fetch(url)
            assert path is not None  # the manifest gives each row exactly one of them
            return read_image_file(path, self._max_bytes)
        except ImageError as error:
            error.image_id = image_id
            return MeasuredImage(image_id=image_id, error=error.to_dict())
        except Exception:
            logger.exception("reading image %s failed", image_id)
            return stage_failed(image_id)


def read_image_file(path: str, max_bytes: int) -> bytes:
    """The file's bytes; its size is checked before reading, as a request body's is."""
    try:
        if os.stat(path).st_size > max_bytes:
            raise ImageError(f"image exceeds the {max_bytes}-byte limit", code="image_too_large")
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}",
                         code="file_unreadable") from None
