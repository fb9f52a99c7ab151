"""The stages over `MeasuredImage`s, shared by the Serve deployments and the in-process pipeline,
and the one place the stage models are built (`build_preprocessor`, `build_extractor`,
`build_scorer`): Serve, Ray Data, `curator assess` and the benchmarks all construct them here.

A stage function takes a batch of items, runs its model once over those that are still
assessable, and passes the rest (images that failed an earlier stage) through untouched. The
deployments call these functions on the batches `@serve.batch` forms; `LocalPipeline` calls them
in one process (the `curator assess` command, the benchmark's in-process limit). A model that
raises on a batch fails only the images that break it (`isolating`), online and offline alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from curator.core.measured import (
    FixedMeasurement,
    MeasuredImage,
    fix_locally,
    measure_locally,
    stage_failed,
)
from curator.core.settings import InputLimits, ModelStageSettings

if TYPE_CHECKING:
    from curator.core.measured import Fixer
    from models.decode import DecodeLimits
    from models.extractor import AttributeExtractor
    from models.preprocess import Preprocessor
    from models.runtime.request import RuntimeRequest
    from models.scorer import QualityScorer
    from rules.schema import FixRef

logger = logging.getLogger(__name__)


# The builders import the models late: torch and the inference runtimes take seconds to import,
# and a process builds only the stages it runs (a Preprocess replica never loads torch).


def build_preprocessor(decode_limits: DecodeLimits | None = None) -> Preprocessor:
    """The Preprocess stage; `decode_limits` None: the defaults for this host."""
    from models.preprocess import Preprocessor

    return Preprocessor() if decode_limits is None else Preprocessor(decode_limits=decode_limits)


def build_extractor(models: Sequence[str], request: RuntimeRequest,
                    detector_threads: int = 1) -> AttributeExtractor:
    """The AttributeExtractor stage: `models` (by name) on the runtime `request` chooses."""
    from models.extractor import AttributeExtractor

    return AttributeExtractor.create(models, request, detector_threads=detector_threads)


def build_scorer(card: str) -> QualityScorer:
    """The QualityScorer stage of `card`, on the device torch_device() chooses."""
    from models.runtime.select import torch_device
    from models.scorer import QualityScorer

    return QualityScorer(card=card, device=torch_device())


def extract_stage(
    extractor: AttributeExtractor, items: Sequence[MeasuredImage]
) -> list[MeasuredImage]:
    def run(batch: Sequence[MeasuredImage]) -> list[MeasuredImage]:
        started = time.perf_counter()
        extractions = extractor.extract([item.model_inputs for item in batch])  # type: ignore[misc]
        elapsed_ms = (time.perf_counter() - started) * 1000
        return [item.with_stage("extractor", found.attributes, elapsed_ms, len(batch),
                                found.boxes)
                for item, found in zip(batch, extractions, strict=True)]

    ready = [item for item in items if item.ok and item.model_inputs is not None]
    done = isolating(run, ready, "extractor")
    return [done.get(id(item), item) for item in items]


def score_stage(scorer: QualityScorer, items: Sequence[MeasuredImage]) -> list[MeasuredImage]:
    def run(batch: Sequence[MeasuredImage]) -> list[MeasuredImage]:
        started = time.perf_counter()
        scores = scorer.score([(item.model_inputs, item.attributes) for item in batch])  # type: ignore[misc]
        elapsed_ms = (time.perf_counter() - started) * 1000
        # The last stage: the model inputs go no further than here.
        return [item.with_stage("scorer", score, elapsed_ms, len(batch),
                                keep_model_inputs=False)
                for item, score in zip(batch, scores, strict=True)]

    ready = [item for item in items if item.ok and item.model_inputs is not None]
    done = isolating(run, ready, "scorer")
    return [done.get(id(item), item) for item in items]


def isolating(
    run: Callable[[Sequence[MeasuredImage]], list[MeasuredImage]],
    batch: Sequence[MeasuredImage],
    stage: str,
) -> dict[int, MeasuredImage]:
    """`run` over the batch, by `id` of each item. When the model raises on a batch, it is run
    again in halves, down to the images that break it: only those fail (`stage_failed`, as the
    images of a crashed replica do), and every other image is answered by a batch without them.
    Images from other listings batched with a poisoned one are never failed by it."""
    if not batch:
        return {}
    try:
        return {id(item): done for item, done in zip(batch, run(batch), strict=True)}
    except Exception:
        if len(batch) == 1:
            logger.exception("the %s failed on image %s", stage, batch[0].image_id)
            return {id(batch[0]): stage_failed(batch[0].image_id)}
        logger.warning("the %s failed on a batch of %d; running it again in halves, without the "
                       "image that breaks it", stage, len(batch), exc_info=True)
        middle = len(batch) // 2
        return {**isolating(run, batch[:middle], stage), **isolating(run, batch[middle:], stage)}


class LocalPipeline:
    """Preprocess -> AttributeExtractor -> QualityScorer in this process, batched."""

    def __init__(
        self,
        stages: ModelStageSettings = ModelStageSettings(),  # noqa: B008 - frozen
        limits: InputLimits = InputLimits(),  # noqa: B008 - frozen
    ) -> None:
        self.batch_size = stages.max_batch_size_limit
        self.preprocessor = build_preprocessor(limits.decode_limits())
        self.extractor = build_extractor(stages.extractor_models, stages.runtime_request())
        self.scorer = build_scorer(stages.scorer_card)

    def run(self, images: Sequence[tuple[str, bytes]]) -> list[MeasuredImage]:
        measured = [
            measure_locally(data, image_id, self.preprocessor, keep_model_inputs=True)
            for image_id, data in images
        ]
        finished: list[MeasuredImage] = []
        for start in range(0, len(measured), self.batch_size):
            batch = measured[start : start + self.batch_size]
            finished.extend(score_stage(self.scorer, extract_stage(self.extractor, batch)))
        return finished

    def fixer(self, originals: Mapping[str, bytes]) -> Fixer:
        """Fixes for `ListingAssessor.assess`: fix the original file in this process, then
        measure the fixed file through the same three stages."""

        async def fix(image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
            fixed = fix_locally(originals[image_id], [(f.name, dict(f.with_)) for f in fixes],
                                self.preprocessor)
            if fixed.error is not None or fixed.data is None:
                return FixedMeasurement.failed(image_id, fixed)
            (measured,) = self.run([(image_id, fixed.data)])
            return FixedMeasurement.of(fixed, measured)

        return fix
