"""How the ingress reaches the stage deployments: one image through Preprocess, then the
AttributeExtractor and the QualityScorer (the scorer of the listing's card), fixes on a Preprocess
replica, and the stages' runtime report. Every failure of a stage becomes that image's error,
never the listing's.

A card that needs no extractor attribute (every card so far: BRISQUE and technical measurements)
is scored beside the extractor rather than after it: on an idle host the two stages take a core
each, and the image makes one hop fewer. A card that reads the extractor's attributes is scored
after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from curator.contracts.errors import ImageError
from curator.contracts.vocabulary import VOCABULARY
from curator.core.fetch import ImageFetcher
from curator.core.image_jobs import ImageJob
from curator.core.measured import FixedMeasurement, MeasuredImage, stage_failed
from models import scorer_cards
from models.scorer_cards import TECHNICAL_CARD
from rules.schema import FixRef

logger = logging.getLogger("ray.serve")

PREPROCESS_BACKEND = "cpu: pillow + opencv + numpy"


class StageChain:
    def __init__(
        self,
        preprocess: DeploymentHandle,
        extractor: DeploymentHandle | None,
        scorers: dict[str, DeploymentHandle],
        default_card: str | None,
        fetcher: ImageFetcher,
        max_image_bytes: int,
    ) -> None:
        """`extractor`, `scorers` and `default_card` are None/empty on the technical tier."""
        self._preprocess = preprocess
        self._extractor = extractor
        self._scorers = scorers
        self._default_card = default_card
        self._fetcher = fetcher
        self._max_image_bytes = max_image_bytes
        self._scored_beside_extractor = frozenset(
            card for card in scorers if not needs_extractor(card))

    @property
    def scorer_cards(self) -> tuple[str, ...]:
        return tuple(self._scorers)

    def card_for(self, requested: str | None) -> str:
        """The scorer card a listing is scored by: its variant's, else the default."""
        if self._default_card is None:
            return TECHNICAL_CARD
        return requested or self._default_card

    async def image_bytes(self, job: ImageJob) -> bytes:
        """The image's file: decoded from the request, or fetched from its URL."""
        if job.error is not None:
            raise job.error
        if job.url is not None:
            return await self._fetcher.fetch(job.url)
        assert job.data is not None
        if len(job.data) > self._max_image_bytes:
            raise ImageError(f"image exceeds the {self._max_image_bytes}-byte limit",
                             code="image_too_large")
        return job.data

    async def measure(self, image_id: str, data: bytes, card: str) -> MeasuredImage:
        # Chained without awaiting in between: each stage's response feeds the next .remote()
        # and Serve passes the result replica to replica; the ingress waits once.
        measured = self._preprocess.run.remote(data, image_id)
        scorer = self._scorers.get(card)
        try:
            if self._extractor is None or scorer is None:
                return await measured
            if card in self._scored_beside_extractor:
                return await self._extract_beside_scoring(measured, scorer)
            extracted = self._extractor.extract.remote(measured)
            return await scorer.score.remote(extracted)
        except Exception:
            # A stage that crashed on this image (or lost its replica) fails this image only;
            # the rest of the listing is still assessed and answered.
            logger.exception("a stage failed on image %s", image_id)
            return stage_failed(image_id)

    async def _extract_beside_scoring(
        self, measured: DeploymentResponse | DeploymentResponseGenerator, scorer: DeploymentHandle
    ) -> MeasuredImage:
        assert self._extractor is not None
        extracted, scored = await asyncio.gather(
            self._extractor.extract_last.remote(measured), scorer.score.remote(measured)
        )
        return merge_stages(extracted, scored)

    async def fix(self, image_id: str, data: bytes, fixes: Sequence[FixRef], card: str
                  ) -> FixedMeasurement:
        """Fix on a Preprocess replica (pixel work stays off the ingress), then measure the fixed
        file through the same stages as any image."""
        try:
            fixed = await self._preprocess.apply_fixes.remote(
                data, [(f.name, dict(f.with_)) for f in fixes]
            )
        except Exception:
            logger.exception("fixing image %s failed", image_id)
            return FixedMeasurement(stage_failed(image_id))
        if fixed.error is not None or fixed.data is None:
            return FixedMeasurement.failed(image_id, fixed)
        return FixedMeasurement.of(fixed, await self.measure(image_id, fixed.data, card))

    async def backends(self) -> dict[str, str]:
        """What each stage runs on, as the replicas report it (GET /v1/version)."""
        if self._extractor is None or self._default_card is None:
            return {"preprocess": PREPROCESS_BACKEND}
        extractor, scorer = await asyncio.gather(
            self._extractor.runtime_info.remote(),
            self._scorers[self._default_card].runtime_info.remote(),
        )
        backends = {"preprocess": PREPROCESS_BACKEND}
        for name, info in extractor.items():
            backends[f"extractor.{name}"] = (
                f"{info['runtime']} on {info['device']} ({info['precision']})"
            )
        backends["scorer"] = f"{scorer['runtime']} on {scorer['device']} ({scorer['card']})"
        return backends


def needs_extractor(card: str) -> bool:
    """Whether the card reads an attribute the extractor makes (or one unknown here, to be safe):
    then it is scored after the extractor rather than beside it."""
    needs = scorer_cards.get(card).needs
    return any(name not in VOCABULARY or VOCABULARY[name].stage == "extractor" for name in needs)


def merge_stages(extracted: MeasuredImage, scored: MeasuredImage) -> MeasuredImage:
    """One image from the extractor and the scorer that both ran on the preprocessed image: the
    attributes, timings and batch sizes of both, in stage order, as if the scorer had run after
    the extractor. An error of either is the image's."""
    for part in (extracted, scored):
        if not part.ok:
            return replace(part, model_inputs=None)
    return replace(
        extracted,
        attributes={**(extracted.attributes or {}), **(scored.attributes or {})},
        timings_ms={**(extracted.timings_ms or {}), **(scored.timings_ms or {})},
        batch_sizes={**(extracted.batch_sizes or {}), **(scored.batch_sizes or {})},
        model_inputs=None,
    )
