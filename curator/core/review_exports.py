"""What reviews become outside the queue: a labelled image set in the dev-set layout of the
detection work (curator.core.evaluation: labels/*.csv + images/), and outcome events of type
`overturned_by_review` that experiments can use as a guardrail.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from curator.core.evaluation import CSV_HEADER, LABELS, PREDICTED_BY
from experiments.records import OVERTURNED_BY_REVIEW, OutcomeRecord
from experiments.review_store import ReviewedItem, ReviewStore

EXPORT_NAME = "reviews"  # labels/reviews.csv, images/reviews/
# Reviewer actions that say the image may be a listing's main image.
_COMPLIANT_ACTIONS = frozenset({"approve", "make_main", "confirm_fix"})


def labels_of(entry: ReviewedItem) -> dict[str, bool]:
    """The dev-set labels a review implies: the service's predictions, each flipped where the
    reviewer marked wrong a rule that reads that label's attribute; main_image_compliant from
    the reviewer's action. A label the service did not measure counts as "no"."""
    item, review = entry.item, entry.review
    wrong_attributes = {v.get("attribute") for v in item.get("violations") or []
                        if v.get("rule_id") in set(review.rules_wrong)}
    predicted = item.get("labels") or {}
    labels = {}
    for label, attribute in PREDICTED_BY.items():
        value = bool(predicted.get(label))
        labels[label] = (not value) if attribute in wrong_attributes else value
    labels["main_image_compliant"] = review.action in _COMPLIANT_ACTIONS
    return labels


def export_labels(store: ReviewStore, root: Path) -> int:
    """Write every reviewed image that still has its thumbnail under `root` as a dev set;
    returns the images written. The latest verdict on an image wins."""
    latest: dict[tuple[str, str], ReviewedItem] = {}
    for entry in store.reviews():  # oldest first: later verdicts replace earlier ones
        if entry.item.get("decision_id") is not None:
            latest[(entry.review.decision_id, entry.review.image_id)] = entry
    images_dir = root / "images" / EXPORT_NAME
    images_dir.mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    written = 0
    with (root / "labels" / f"{EXPORT_NAME}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for (decision_id, image_id), entry in sorted(latest.items()):
            thumbnail = store.thumbnail(decision_id, image_id)
            if thumbnail is None:
                continue  # purged: nothing left to label
            name = f"{_safe(decision_id)}-{_safe(image_id)}.jpg"
            (images_dir / name).write_bytes(thumbnail)
            labels = labels_of(entry)
            width, height = (entry.item.get("image_size") or [0, 0])[:2]
            notes = f"reviewed by {entry.review.reviewer}: {entry.review.action}"
            if entry.review.comment:
                notes += f"; {entry.review.comment}"
            writer.writerow([
                f"{EXPORT_NAME}/{name}", f"review:{entry.item['listing_id']}",
                entry.item["category"],
                entry.item.get("source_url") or f"review:{decision_id}/{image_id}",
                "customer upload (internal use)", f"{width}x{height}",
                *("yes" if labels[label] else "no" for label in LABELS), notes,
            ])
            written += 1
    return written


def overturn_events(reviewed: Iterable[ReviewedItem]) -> list[OutcomeRecord]:
    """One `overturned_by_review` event per review that marked any rule wrong; the event id is
    derived from (decision, image, reviewer), so exporting twice stores each once."""
    events = []
    for entry in reviewed:
        review = entry.review
        if not review.rules_wrong:
            continue
        events.append(OutcomeRecord(
            event_id=f"review:{review.decision_id}:{review.image_id}:{review.reviewer}",
            type=OVERTURNED_BY_REVIEW, occurred_at=review.reviewed_at,
            decision_id=review.decision_id, unit_id=entry.item.get("listing_id"), value=None,
        ))
    return events


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
