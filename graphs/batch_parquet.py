"""The batch mode's answers as Parquet (`curator batch --format parquet`), for analytics teams:
one row per listing, as in the JSON Lines beside it, in the same order. The columns people
filter and group by are typed; the images are a nested list; and `answer` keeps the very JSON
text, so nothing the API says is lost to the flattening."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

IMAGE_TYPE = pa.struct([
    ("image_id", pa.string()),
    ("status", pa.string()),  # ok, error
    ("action", pa.string()),  # approve, review, reject, fix; null for an image in error
    ("error_code", pa.string()),
    ("quality_score", pa.float64()),
    ("eligible_as_main", pa.bool_()),
    ("violated_rules", pa.list_(pa.string())),  # rule ids of the image's verdict
    ("duplicate_of", pa.string()),
])

ANSWER_SCHEMA = pa.schema([
    ("listing_id", pa.string()),
    ("decision_id", pa.string()),  # null for a refused listing
    ("category", pa.string()),
    ("marketplace", pa.string()),
    ("policy_id", pa.string()),
    ("policy_version", pa.string()),
    ("error_code", pa.string()),  # a refused listing's code (the API's 4xx); else null
    ("main_image_id", pa.string()),
    ("main_image_compliant", pa.bool_()),
    ("images", pa.list_(IMAGE_TYPE)),
    ("answer", pa.string()),  # the JSON text, as in answers-*.jsonl
])


def _image_row(image: dict[str, Any]) -> dict[str, Any]:
    verdict = image.get("verdict") or {}
    return {
        "image_id": image["image_id"],
        "status": image["status"],
        "action": image.get("action"),
        "error_code": (image.get("error") or {}).get("code"),
        "quality_score": (image.get("quality") or {}).get("score"),
        "eligible_as_main": image.get("eligible_as_main"),
        "violated_rules": [v["rule_id"] for v in verdict.get("violations") or []],
        "duplicate_of": image.get("duplicate_of"),
    }


def answer_row(text: str) -> dict[str, Any]:
    """One listing's row from its answer's JSON text (a refused listing's too: its error body
    names the listing)."""
    answer = json.loads(text)
    selection = answer.get("selection") or {}
    return {
        "listing_id": answer["listing_id"],
        "decision_id": answer.get("decision_id"),
        "category": answer.get("category"),
        "marketplace": answer.get("marketplace"),
        "policy_id": answer.get("policy_id"),
        "policy_version": answer.get("policy_version"),
        "error_code": (answer.get("error") or {}).get("code"),
        "main_image_id": selection.get("main_image_id"),
        "main_image_compliant": selection.get("main_image_compliant"),
        "images": [_image_row(image) for image in answer.get("images") or []],
        "answer": text,
    }


def answers_table(texts: Sequence[str]) -> pa.Table:
    """The rows of these answers, in order, with ANSWER_SCHEMA (also when empty)."""
    return pa.Table.from_pylist([answer_row(text) for text in texts], schema=ANSWER_SCHEMA)
