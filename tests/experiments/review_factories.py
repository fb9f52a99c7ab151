"""Review items and reviews for the store tests: small, valid, with a real JPEG thumbnail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from experiments.review_records import Review, ReviewItem
from tests.support import synthetic

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
THUMBNAIL = synthetic.to_jpeg_bytes(synthetic.render_product(size=(96, 96), seed=3))


def review_item(decision_id: str = "d1", image_id: str = "front", **changes: Any) -> ReviewItem:
    values: dict[str, Any] = {
        "decision_id": decision_id, "image_id": image_id, "listing_id": f"l-{decision_id}",
        "created_at": T0, "category": "apparel", "marketplace": "US", "variant": "control",
        "action": "review", "rule_ids": ["main.composition.not_cropped"],
        "violations": [{"rule_id": "main.composition.not_cropped", "severity": "block",
                        "attribute": "composition.fill_ratio", "measured": 0.6,
                        "threshold": 0.98, "op": ">=", "message": "looks cropped"}],
        "boxes": [{"kind": "text", "label": "overlay", "score": 0.9,
                   "box": [0.1, 0.1, 0.4, 0.2]}],
        "selection": {"main_image_id": image_id, "order": [image_id], "steps": ["only one"]},
        "labels": {"white_background": True, "overlay_text": False, "person": False,
                   "multiple_items": False, "border": False},
        "image_size": [96, 96], "thumbnail": THUMBNAIL,
    }
    values.update(changes)
    return ReviewItem(**values)


def review(decision_id: str = "d1", image_id: str = "front", reviewer: str = "ana",
           **changes: Any) -> Review:
    values: dict[str, Any] = {"decision_id": decision_id, "image_id": image_id,
                              "reviewer": reviewer, "action": "approve", "reviewed_at": T0}
    values.update(changes)
    return Review(**values)
