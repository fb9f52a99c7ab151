"""A listing's images as the ingress receives them: checked, decoded from base64, or named by a
URL still to fetch. Problems with one image become that image's error, not the listing's."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from curator.contracts.errors import CuratorError, ImageError
from curator.contracts.schemas import AssessRequest, ImageInput, Role
from models.decode import DecodeLimits, read_header

_DATA_URL_PREFIX = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageJob:
    image_id: str
    role: Role | None
    data: bytes | None = None
    url: str | None = None
    error: ImageError | None = None  # found while reading the request itself


def job_from_input(index: int, image: ImageInput, max_image_bytes: int) -> ImageJob:
    if image.url is not None:
        return ImageJob(image.image_id, image.role, url=image.url)
    assert image.data is not None
    field = f"images[{index}].data"
    encoded = _DATA_URL_PREFIX.sub("", image.data, count=1)
    # 4 base64 characters carry 3 bytes: refuse before decoding what is too large anyway.
    if len(encoded) * 3 // 4 > max_image_bytes:
        error = ImageError(f"image exceeds the {max_image_bytes}-byte limit",
                           code="image_too_large", field=field)
        return ImageJob(image.image_id, image.role, error=error)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        error = ImageError("data is not valid base64", code="invalid_base64", field=field)
        return ImageJob(image.image_id, image.role, error=error)
    return ImageJob(image.image_id, image.role, data=data)


def id_from_filename(filename: str | None, index: int) -> str:
    """An image id from an uploaded file's name (`images[]` of the multipart route)."""
    stem = re.sub(r"[^A-Za-z0-9._:-]", "_", (filename or "").rsplit("/", 1)[-1])[:128]
    return stem.lstrip("._:-") or f"image-{index + 1}"


class _Identified(Protocol):
    @property
    def image_id(self) -> str: ...


def upload_request(listing_id: str, category: str, marketplace: str,
                   filenames: Sequence[str | None], max_images: int) -> AssessRequest:
    """The multipart route's form as the JSON route's request (its images without data yet), so
    that both routes share every rule; the count is checked before a file is read."""
    ids = [id_from_filename(name, index) for index, name in enumerate(filenames)]
    request = AssessRequest.model_validate(
        {
            "listing_id": listing_id,
            "category": category,
            "marketplace": marketplace,
            "images": [{"image_id": image_id, "data": ""} for image_id in ids],
        }
    )
    check_listing(request.images, max_images)
    return request


def check_listing(jobs: Sequence[_Identified], max_images: int) -> None:
    """Listing-level problems, which fail the whole request: too many images, repeated ids.
    Takes the request's images as well as jobs, so that it can run before any base64 is
    decoded."""
    if len(jobs) > max_images:
        raise CuratorError(
            f"a listing has at most {max_images} images, got {len(jobs)}",
            code="too_many_images",
            field="images",
        )
    seen: set[str] = set()
    for index, job in enumerate(jobs):
        if job.image_id in seen:
            raise CuratorError(
                f"image_id {job.image_id!r} appears twice",
                code="duplicate_image_id",
                status=422,
                field=f"images[{index}].image_id",
                image_id=job.image_id,
            )
        seen.add(job.image_id)


def check_decode_memory(images: Sequence[bytes | None], limits: DecodeLimits) -> None:
    """Refuse a listing whose images would take more decoding memory together than one replica
    holds at once (`limits.max_decode_bytes`), from their headers, before any pixel is decoded.

    An image whose header the decoder refuses (too many pixels or too costly alone, corrupt, ...)
    counts nothing here: it becomes that image's error, as it would anyway. `None`: an image
    that already failed (no bytes)."""
    budget = limits.max_decode_bytes
    if budget is None:
        return
    costs = []
    for data in images:
        if data is None:
            continue
        try:
            costs.append(read_header(data, limits).decode_bytes)
        except ImageError:
            continue
    total = sum(costs)
    if total > budget:
        raise CuratorError(
            f"the listing's {len(costs)} images would take about {total / 2**20:.0f} MiB to "
            f"decode together (width x height x bytes per pixel of each file's colour mode, read "
            f"from the headers), more than the {budget / 2**20:.0f} MiB a replica decodes at "
            "once: send fewer or smaller images",
            code="listing_too_large",
            status=413,
            field="images",
        )
