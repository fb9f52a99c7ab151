"""The ingress's metrics (curator.core.service.IngressMetrics) as Ray Serve metrics, exported
with Ray's Prometheus metrics (dashboard: deploy/grafana)."""

from __future__ import annotations

from collections.abc import Sequence

from ray.serve.metrics import Counter, Gauge, Histogram


class ServeIngressMetrics:
    def __init__(self) -> None:
        self._listing_latency = Histogram(
            "curator_listing_ms",
            description="Time to assess one listing in the ingress, ms",
            boundaries=[5, 10, 25, 50, 100, 250, 500, 1000, 2500],
        )
        self._actions = Counter(
            "curator_image_actions",
            description="Per-image outcomes: approve, review, reject, fix or error",
            tag_keys=("action",),
        )
        self._policy_reloads = Counter(
            "curator_policy_reloads",
            description="Policy set updates through user_config, by outcome",
            tag_keys=("outcome",),
        )
        self._refused = Counter(
            "curator_admission_refused",
            description="Listings refused with 429 at the admission limit",
        )
        self._admission_limit = Gauge(
            "curator_admission_limit",
            description="Images in flight this ingress replica admits now (adaptive)",
        )
        self._outbox_events = Counter(
            "curator_outbox_events",
            description="Decision outbox: rows stored, store errors, dead letters, put failures",
            tag_keys=("event",),
        )

    def listing_assessed(self, latency_ms: float, actions: Sequence[str]) -> None:
        for action in actions:
            self._actions.inc(tags={"action": action})
        self._listing_latency.observe(latency_ms)

    def policy_reload(self, outcome: str) -> None:
        self._policy_reloads.inc(tags={"outcome": outcome})

    def admission_refused(self) -> None:
        self._refused.inc()

    def admission_limit(self, limit: float) -> None:
        self._admission_limit.set(limit)

    def outbox_event(self, name: str, amount: float) -> None:
        self._outbox_events.inc(amount, tags={"event": name})
