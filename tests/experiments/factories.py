"""Decision and outcome records for the store and outbox tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from experiments.records import DecisionRecord, OutcomeRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def decision(decision_id: str, **overrides: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "decision_id": decision_id,
        "unit_id": f"unit-{decision_id}",
        "created_at": T0,
        "variant": "control",
        "policy_set_version": "policies-7",
        "policy_version": "main-image-core@3",
        "scorer_version": "v1",
        "category": "home",
        "marketplace": "US",
        "image_actions": {"front": "approve", "side": "reject"},
        "experiment_id": "exp-1",
        "bucket": 17,
        "main_image_id": "front",
        "error_count": 0,
        "latency_ms": 120.5,
    }
    fields.update(overrides)
    return DecisionRecord(**fields)


def outcome(
    event_id: str, kind: str = "click", minutes: float = 1.0, **target: Any
) -> OutcomeRecord:
    """An event `minutes` after T0, naming a unit and/or a decision (`unit_id=`, `decision_id=`)."""
    return OutcomeRecord(
        event_id=event_id,
        type=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0 + timedelta(minutes=minutes, seconds=2),
        **target,
    )
