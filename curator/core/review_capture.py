"""What the ingress keeps of a decision a person must look at: a review item per image, with a
small thumbnail of the original (and of the fixed image when there is one).

Runs after the answer is computed, as a background task of the ingress (`ReviewCapture.keep`):
the client never waits on it. Thumbnails use the JPEG decoder's reduced-scale decode
(`Image.draft`), which decodes a 4000 px photo at 1/8 scale for a fraction of a full decode.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

from curator.contracts.schemas import AssessResponse, ImageAssessment
from curator.core.evaluation import PREDICTED_BY
from curator.core.settings import ReviewSettings
from experiments.review_records import ReviewItem

logger = logging.getLogger("ray.serve")

THUMBNAIL_QUALITY = 80  # JPEG quality: ~15-20 KB at 384 px
REVIEW_ACTION = "review"


class ReviewSink(Protocol):
    """Where review items go: the replica's outbox (experiments.outbox.Outbox)."""

    def put_review_items(self, records: Sequence[ReviewItem]) -> bool: ...


def needs_review(image: ImageAssessment, settings: ReviewSettings) -> bool:
    """An image a person must look at: `action: review`, or, where the business confirms fixes,
    a fix that was accepted."""
    if image.action == REVIEW_ACTION:
        return True
    return bool(settings.confirm_fixes and image.fix is not None and image.fix.accepted)


def make_thumbnail(data: bytes, max_px: int) -> tuple[bytes, tuple[int, int]] | None:
    """A JPEG of at most `max_px` on its longest side, and the original's (width, height);
    None when the bytes are not an image Pillow reads (the image's error is in the answer)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            size = opened.size
            # JPEG only: decode straight at 1/2, 1/4 or 1/8 scale, no larger than needed.
            opened.draft("RGB", (max_px, max_px))
            image: Image.Image = ImageOps.exif_transpose(opened)
            if image.mode != "RGB":
                image = image.convert("RGB")
            image.thumbnail((max_px, max_px), Image.Resampling.BILINEAR)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return out.getvalue(), size


def review_items(
    answer: AssessResponse,
    originals: Mapping[str, bytes],
    urls: Mapping[str, str],
    settings: ReviewSettings,
    now: datetime | None = None,
) -> list[ReviewItem]:
    """The review items of a decision: one per image that needs a person; [] when none does."""
    chosen = [image for image in answer.images if needs_review(image, settings)]
    if not chosen:
        return []
    selection = answer.selection.model_dump(mode="json")
    items = []
    for image in chosen:
        thumbnail = None
        size: tuple[int, int] = (0, 0)
        data = originals.get(image.image_id)
        if data is not None:
            made = make_thumbnail(data, settings.thumbnail_px)
            if made is not None:
                thumbnail, size = made
        fixed_thumbnail = None
        if image.fix is not None and image.fix.image:
            made = make_thumbnail(_decoded(image.fix.image), settings.thumbnail_px)
            fixed_thumbnail = made[0] if made is not None else None
        violations = [v.model_dump(mode="json") for v in
                      (image.verdict.violations if image.verdict is not None else [])]
        items.append(ReviewItem(
            decision_id=answer.decision_id, image_id=image.image_id,
            listing_id=answer.listing_id, created_at=now or datetime.now(UTC),
            category=answer.category, marketplace=answer.marketplace, variant=answer.variant,
            action=image.action or "error",
            rule_ids=list(dict.fromkeys(v["rule_id"] for v in violations)),
            violations=violations,
            boxes=[d.model_dump(mode="json") for d in image.detections or []],
            selection=selection, labels=_predicted_labels(image.attributes or {}),
            fix=(image.fix.model_dump(mode="json", exclude={"image"})
                 if image.fix is not None else None),
            image_size=size, source_url=urls.get(image.image_id),
            thumbnail=thumbnail, fixed_thumbnail=fixed_thumbnail,
        ))
    return items


def _decoded(data: str) -> bytes:
    return base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data)


def _predicted_labels(attributes: Mapping[str, Any]) -> dict[str, bool | None]:
    """The detection labels of the dev set as the service measured them (None: not measured)."""
    labels: dict[str, bool | None] = {}
    for label, attribute in PREDICTED_BY.items():
        value = attributes.get(attribute)
        labels[label] = bool(value) if value is not None else None
    return labels


class ReviewCapture:
    """Keeps review items of the ingress's answers, in the background, through its outbox."""

    def __init__(self, settings: ReviewSettings, sink: ReviewSink) -> None:
        self.settings = settings
        self._sink = sink
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done (asyncio's rule)

    def keep(self, answer: AssessResponse, originals: Mapping[str, bytes],
             urls: Mapping[str, str]) -> None:
        """Schedule the items of `answer`, if any image needs a person; returns at once."""
        if not self.settings.enabled or not any(
                needs_review(image, self.settings) for image in answer.images):
            return
        task = asyncio.get_running_loop().create_task(self._keep(answer, dict(originals),
                                                                 dict(urls)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep(self, answer: AssessResponse, originals: dict[str, bytes],
                    urls: dict[str, str]) -> None:
        try:
            items = await asyncio.to_thread(review_items, answer, originals, urls, self.settings)
            if items:
                self._sink.put_review_items(items)
        except Exception:  # a lost thumbnail must not take the replica's loop down
            logger.exception("review items of decision %s not kept", answer.decision_id)

    async def drain(self) -> None:
        """Wait for the items scheduled so far (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
