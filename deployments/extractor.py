"""AttributeExtractor: the neural detectors on GPU replicas (CPU here), with dynamic batching."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from ray import serve
from ray.serve.metrics import Histogram

from curator.core.measured import MeasuredImage
from curator.core.pipeline import build_extractor, extract_stage
from deployments.batching import (
    BATCH_SIZE_BOUNDARIES,
    DEFAULT_BATCH_WAIT_TIMEOUT_S,
    DEFAULT_MAX_BATCH_SIZE,
    STAGE_LOGGING,
    BatchingConfig,
)
from deployments.runtime_metric import RuntimeChoiceMetric
from models.runtime.request import RuntimeRequest

logger = logging.getLogger("ray.serve")

@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64,
                  logging_config=STAGE_LOGGING)
class AttributeExtractor:
    def __init__(self, models: list[str], request: RuntimeRequest,
                 detector_threads: int = 1) -> None:
        # detector_threads > 1: a lone request's detectors run side by side and take the idle
        # cores; under load the replicas share the cores as before (models.detector_threads).
        self._limit = request.max_batch_size
        self._warmed_batch = 0  # the largest batch the runtimes have run
        self._extractor = build_extractor(models, request, detector_threads)
        self._batch_sizes = Histogram(
            "curator_extractor_batch_size",
            description="Images per batch the extractor ran",
            boundaries=BATCH_SIZE_BOUNDARIES,
        )
        self._runtime_metric = RuntimeChoiceMetric()
        self._runtime_metric.update(self._extractor.runtime_info)
        logger.info("extractor runtimes: %s", ", ".join(
            f"{name} {info.runtime} on {info.device} ({info.precision})"
            for name, info in self._extractor.runtime_info.items()))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        config = BatchingConfig.model_validate(user_config)
        if config.max_batch_size > self._limit:
            raise ValueError(
                f"max_batch_size {config.max_batch_size} exceeds the {self._limit} this "
                "replica's runtimes were built for"
            )
        if config.max_batch_size > self._warmed_batch:
            # Before the batcher may form the bigger batches: the runtimes take their working
            # memory now, not under load (AttributeExtractor.warm_up). Serve calls this before
            # the replica is ready; a live raise blocks this replica for the warm-up (seconds).
            started = time.perf_counter()
            self._extractor.warm_up(config.max_batch_size)
            self._warmed_batch = config.max_batch_size
            logger.info("extractor warmed up at batch %d in %.1f s", config.max_batch_size,
                        time.perf_counter() - started)
        self.extract.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]
        self.extract.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[attr-defined]
        logger.info("extractor batching: %s", config)

    def runtime_info(self) -> dict[str, dict[str, str]]:
        return {name: info.as_dict() for name, info in self._extractor.runtime_info.items()}

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                 batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S)
    async def extract(self, items: list[MeasuredImage]) -> list[MeasuredImage]:
        # Inference blocks; a worker thread keeps this replica's event loop free to form the
        # next batch meanwhile.
        return await asyncio.to_thread(self._extract_batch, items)

    async def extract_last(self, item: MeasuredImage) -> MeasuredImage:
        """`extract` for an image whose last stage this is (the scorer ran beside it): batched
        with the others, and the pixels go no further."""
        extracted: MeasuredImage = await self.extract(item)
        return replace(extracted, model_inputs=None)

    def _extract_batch(self, items: list[MeasuredImage]) -> list[MeasuredImage]:
        self._batch_sizes.observe(sum(1 for item in items if item.ok))
        extracted = extract_stage(self._extractor, items)
        self._runtime_metric.update(self._extractor.runtime_info)
        return extracted
