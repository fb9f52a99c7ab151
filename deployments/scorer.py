"""QualityScorer: BRISQUE on batches (torch) and a versioned scorer card.

One deployment per scorer card version, so two versions can serve side by side (A/B)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve
from ray.serve.metrics import Histogram

from curator.core.measured import MeasuredImage
from curator.core.pipeline import build_scorer, score_stage
from deployments.batching import (
    BATCH_SIZE_BOUNDARIES,
    DEFAULT_BATCH_WAIT_TIMEOUT_S,
    DEFAULT_MAX_BATCH_SIZE,
    STAGE_LOGGING,
    BatchingConfig,
)
from deployments.runtime_metric import RuntimeChoiceMetric
from models.heap import BRISQUE_MMAP_THRESHOLD_BYTES, return_large_buffers
from models.runtime.base import RuntimeInfo

logger = logging.getLogger("ray.serve")


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64,
                  logging_config=STAGE_LOGGING)
class QualityScorer:
    def __init__(self, card: str, max_batch_size_limit: int) -> None:
        # BRISQUE's large temporaries go back to the OS once a pass is done, so the replica's
        # RSS does not ratchet up with the largest pass it has run (models/heap.py).
        return_large_buffers(BRISQUE_MMAP_THRESHOLD_BYTES)
        self._limit = max_batch_size_limit
        self._scorer = build_scorer(card)
        self._card = card
        self._batch_sizes = Histogram(
            "curator_scorer_batch_size",
            description="Images per batch the quality scorer ran",
            boundaries=BATCH_SIZE_BOUNDARIES,
            tag_keys=("card",),
        )
        # BRISQUE's tensor code runs in torch, in float64 (models/brisque.py), where
        # torch_device() chose.
        self._runtime_metric = RuntimeChoiceMetric()
        self._runtime_metric.update({"brisque": RuntimeInfo(
            "brisque", "torch", str(self._scorer.device), "fp64")})
        logger.info("scorer %s runtime: torch on %s (fp64)", card, self._scorer.device)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = BatchingConfig.model_validate(user_config)
        if config.max_batch_size > self._limit:
            raise ValueError(f"max_batch_size {config.max_batch_size} exceeds {self._limit}")
        self.score.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]
        self.score.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[attr-defined]
        logger.info("scorer %s batching: %s", self._card, config)

    def runtime_info(self) -> dict[str, str]:
        return {"card": self._card, "device": str(self._scorer.device), "runtime": "torch"}

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                 batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S)
    async def score(self, items: list[MeasuredImage]) -> list[MeasuredImage]:
        return await asyncio.to_thread(self._score_batch, items)

    def _score_batch(self, items: list[MeasuredImage]) -> list[MeasuredImage]:
        self._batch_sizes.observe(sum(1 for item in items if item.ok), tags={"card": self._card})
        return score_stage(self._scorer, items)
