"""The batch pipeline's stages: Ray Data callable classes around the plain classes the online
deployments wrap, so offline and online measure and decide with the same code.

Each class is built once per Ray Data actor (its models load once) and called with a batch of
manifest rows as an Arrow table, to which it adds or updates `measured`: the image's
`MeasuredImage`, as it travels between the Serve stages, pickled (Ray Data would pickle it too,
after failing to make Arrow of it and saying so for every batch). The file itself is not carried
past the Preprocess stage: the shuffle that groups images into listings then moves a few KB of
measurements per image rather than the image, and the few images the rules fix are read again
for the fix. A failure with one image becomes that image's error and is never the job's.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable, Sequence
from functools import cached_property

import pyarrow as pa

from curator.core.assessment import ListingAssessor
from curator.core.measured import FixedMeasurement, MeasuredImage, measure_locally, stage_failed
from curator.core.pipeline import (
    LocalPipeline,
    build_extractor,
    build_preprocessor,
    build_scorer,
    extract_stage,
    score_stage,
)
from curator.core.settings import InputLimits, ModelStageSettings, UrlFetchSettings
from graphs.batch_listing import assess_listing
from graphs.batch_manifest import IMAGE_INDEX
from graphs.batch_sources import ImageSource
from models.heap import DECODE_MMAP_THRESHOLD_BYTES, return_large_buffers
from rules import policy_set_from_texts
from rules.schema import FixRef

logger = logging.getLogger(__name__)

MEASURED = "measured"
Stage = Callable[[Sequence[MeasuredImage]], list[MeasuredImage]]


class ReadImages:
    """Read each image (file or URL) and run the Preprocess stage on it (CPU)."""

    def __init__(self, limits: InputLimits, url_fetch: UrlFetchSettings) -> None:
        # As a Preprocess replica online (models/heap.py).
        return_large_buffers(DECODE_MMAP_THRESHOLD_BYTES)
        self._source = ImageSource(limits, url_fetch)
        self._preprocessor = build_preprocessor(limits.decode_limits())

    def __call__(self, batch: pa.Table) -> pa.Table:
        image_ids = batch.column("image_id").to_pylist()

        async def read_all() -> list[bytes | MeasuredImage]:
            return await asyncio.gather(*(
                self._source.read(image_id, path, url)
                for image_id, path, url in zip(image_ids, batch.column("path").to_pylist(),
                                               batch.column("url").to_pylist(), strict=True)
            ))

        measured = [
            source if isinstance(source, MeasuredImage) else self._measure(image_id, source)
            for image_id, source in zip(image_ids, self._source.run(read_all()), strict=True)
        ]
        return with_measured(batch, measured)

    def _measure(self, image_id: str, data: bytes) -> MeasuredImage:
        try:
            return measure_locally(data, image_id, self._preprocessor, keep_model_inputs=True)
        except Exception:  # a measurement crashed: as a crashed Preprocess replica online
            logger.exception("preprocessing image %s failed", image_id)
            return stage_failed(image_id)


class ExtractAttributes:
    """The AttributeExtractor stage (text, people) over a batch; on a GPU where Ray gives one."""

    def __init__(self, stages: ModelStageSettings) -> None:
        extractor = build_extractor(stages.extractor_models, stages.runtime_request())
        self._stage: Stage = lambda items: extract_stage(extractor, items)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return with_measured(batch, run_isolated(self._stage, measured_in(batch), "extractor"))


class ScoreQuality:
    """The QualityScorer stage (BRISQUE + the scorer card) over a batch."""

    def __init__(self, stages: ModelStageSettings) -> None:
        scorer = build_scorer(stages.scorer_card)
        self._stage: Stage = lambda items: score_stage(scorer, items)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return with_measured(batch, run_isolated(self._stage, measured_in(batch), "scorer"))


class AssessListings:
    """Rules, fixes and selection for one listing (a group of rows), as the ingress does them.

    A fix is applied to the original file, read again, and the fixed image is measured through
    all three stages, as online, by a `LocalPipeline` built at this actor's first fix: most
    listings need none, and then its models never load."""

    def __init__(self, policy_texts: dict[str, str], stages: ModelStageSettings,
                 limits: InputLimits, url_fetch: UrlFetchSettings) -> None:
        self._assessor = ListingAssessor(policy_set_from_texts(policy_texts))
        self._source = ImageSource(limits, url_fetch)
        self._stages = stages
        self._limits = limits

    @cached_property
    def _pipeline(self) -> LocalPipeline:
        return LocalPipeline(self._stages, self._limits)

    def __call__(self, group: pa.Table) -> pa.Table:
        rows = group.sort_by(IMAGE_INDEX).to_pylist()  # the order of the listing's request
        for row in rows:
            row[MEASURED] = pickle.loads(row[MEASURED])
        by_id = {row["image_id"]: row for row in rows}

        async def fix(image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
            row = by_id[image_id]
            original = await self._source.read(image_id, row["path"], row["url"])
            if isinstance(original, MeasuredImage):
                return FixedMeasurement(original)
            return await self._pipeline.fixer({image_id: original})(image_id, fixes)

        answer = self._source.run(assess_listing(
            self._assessor, rows, fix, self._limits.max_images_per_listing))
        return pa.table({"listing_id": [rows[0]["listing_id"]], "answer": [answer]})


def run_isolated(stage: Stage, items: list[MeasuredImage], name: str) -> list[MeasuredImage]:
    """The stage over the batch; when it raises, over each image alone, so that only an image
    that breaks it fails (`stage_failed`, as a crashed replica's images do online)."""
    try:
        return stage(items)
    except Exception:
        if len(items) > 1:
            logger.warning("the %s failed on a batch of %d; retrying image by image", name,
                           len(items))
            return [result for item in items for result in run_isolated(stage, [item], name)]
        (item,) = items
        logger.exception("the %s failed on image %s", name, item.image_id)
        return [stage_failed(item.image_id)]


def measured_in(batch: pa.Table) -> list[MeasuredImage]:
    return [pickle.loads(blob) for blob in batch.column(MEASURED).to_pylist()]


def with_measured(batch: pa.Table, measured: Sequence[MeasuredImage]) -> pa.Table:
    column = pa.array([pickle.dumps(item, protocol=5) for item in measured], pa.large_binary())
    if MEASURED in batch.column_names:
        return batch.set_column(batch.schema.get_field_index(MEASURED), MEASURED, column)
    return batch.append_column(MEASURED, column)
