"""Canary: the one replica that moves ramped experiments along (experiments.canary_runner).

Exactly one replica, so exactly one writer of canary transitions. The ingress hands it the live
experiment definitions (its user_config) whenever they change and on every refresh; the
transitions go to the store, which every ingress replica reads its weights from. A human's
`serve deploy` therefore never resets a ramp, and a restarted controller picks up where the
store says it was.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve

from experiments.config import experiments_from_data
from experiments.live import EnsuredStore
from experiments.store import DecisionStore

logger = logging.getLogger("ray.serve")


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.05}, max_ongoing_requests=8)
class Canary:
    def __init__(self, store_url: str, interval_s: float) -> None:
        self._store = EnsuredStore(DecisionStore(store_url))
        self._interval_s = interval_s
        self._experiments: dict[str, Any] = {}
        self._loop: asyncio.Task[None] | None = None

    async def watch(self, experiments: list[dict[str, Any]]) -> None:
        """The experiments to look after (validated by the ingress already)."""
        self._experiments = experiments_from_data(experiments, "user_config") if experiments else {}
        if self._loop is None:
            self._loop = asyncio.create_task(self._run())

    async def tick(self) -> list[dict[str, Any]]:
        """One look at every ramping experiment now; the transitions it made."""
        if not self._experiments:
            return []
        from experiments.canary_runner import CanaryRunner

        runner = CanaryRunner(self._store.ready(), self._experiments)
        transitions = await asyncio.to_thread(runner.tick)
        return [transition.to_json() for transition in transitions]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                for transition in await self.tick():
                    logger.info("canary transition: %s", transition)
            except Exception:  # the store may be down: look again next time
                logger.exception("canary look failed")
