"""The offline graph: the online stages over a manifest of images, with Ray Data (batch mode).

    manifest (graphs.batch_manifest) -> ReadImages        read the file or fetch the URL, Preprocess
                                      -> ExtractAttributes text, people; batched; GPU where asked
                                      -> ScoreQuality      BRISQUE + scorer card; batched
       groupby(listing_id).map_groups -> AssessListings    rules, fixes, selection per listing
                                      -> answers-*.jsonl   one HTTP answer per listing

Every stage is an actor pool of the stage classes the Serve deployments wrap, configured from
the same serve config (`args:` and the ingress's policy set), so a listing gets the answer
`POST /v1/assess` would give it — as the control arm: experiments are not assigned offline, and
no decision is logged. Used by `curator batch` and the tests.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import ray
import ray.data

from curator.core.settings import CuratorAppArgs, CuratorConfig, ModelStageSettings
from graphs.batch_options import EXTRACTOR_MEMORY, LISTING_MEMORY, SCORER_MEMORY, BatchOptions
from graphs.batch_output import AnswerCounts, ListingAnswersDatasink
from graphs.batch_stages import AssessListings, ExtractAttributes, ReadImages, ScoreQuality
from graphs.serve_config import ingress_entry, online_application, read_serve_config
from rules.loader import policy_set_from_texts, read_policy_texts

logger = logging.getLogger(__name__)

# Ray scheduling labels, not cores (Ray pins nothing): fractions, so that one actor of every
# stage plus Ray Data's shuffle and write tasks fit on a 2-core host at once, as the serve
# config's fractions do. Actual CPU use follows the work.
READ_CPUS = 0.5
MODEL_CPUS = 0.5
LISTING_CPUS = 0.25
# Listings per shuffle partition: enough partitions to feed every listing actor, few enough that
# a small job is not 200 tiny tasks (Ray Data's default).
LISTINGS_PER_PARTITION = 256
MAX_PARTITIONS = 200
# Input blocks the manifest is cut into, at most: each is one read task's worth of rows.
MAX_INPUT_BLOCKS = 1000


@dataclass(frozen=True)
class BatchSettings:
    """What the online graph runs with, from its serve config: the same models and card, the
    same input limits and URL rules, the same policy set."""

    app_args: CuratorAppArgs
    models: ModelStageSettings
    policy_texts: dict[str, str]

    @classmethod
    def from_serve_config(cls, path: Path, policy_dir: Path | None = None) -> BatchSettings:
        """The online application's settings in the serve config at `path`; `policy_dir`
        replaces its policy set. ValueError (pydantic's included) for a config that cannot
        run offline."""
        online = online_application(read_serve_config(path), path)
        app_args = CuratorAppArgs.model_validate(online.get("args") or {})
        if app_args.models is None:
            raise ValueError(f"{path}: args.models is null (the technical-only tier); the batch "
                             "mode runs the model stages")
        live = CuratorConfig.model_validate(ingress_entry(online).get("user_config") or {})
        if live.experiments:
            logger.warning("%s configures experiments; offline answers are the control arm's",
                           path)
        # The ingress prefers a policy set published into its user_config over the files.
        if policy_dir is not None:
            texts = read_policy_texts(policy_dir)
        else:
            texts = live.policies or read_policy_texts(app_args.policy_dir)
        policy_set_from_texts(texts)  # PolicyError now rather than in every actor later
        return cls(app_args, app_args.models, texts)


@dataclass(frozen=True)
class BatchSummary:
    counts: AnswerCounts
    wall_s: float  # from the first actor starting to the last answer written

    @property
    def images_per_s(self) -> float:
        return self.counts.images / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        counts = self.counts
        refused = f" ({_tally(counts.refused_listings)} refused)" if counts.refused_listings else ""
        return [
            f"listings      {counts.listings}{refused}",
            f"images        {counts.images}",
            f"actions       {_tally(counts.actions) or 'none'}",
            f"image errors  {_tally(counts.image_errors) or 'none'}",
            f"wall          {self.wall_s:.1f} s (actor start-up and model loading included)",
            f"throughput    {self.images_per_s:.2f} images/s",
        ]


def run_batch(manifest: pa.Table, out: Path, settings: BatchSettings,
              options: BatchOptions = BatchOptions()) -> BatchSummary:  # noqa: B008 - frozen
    """Assess every listing of `manifest` (from `read_manifest`) on the connected Ray; the
    answers go to JSON Lines files in `out` (and Parquet ones beside them with
    `options.parquet`)."""
    started = time.perf_counter()
    sink = ListingAnswersDatasink(out, parquet=options.parquet)
    build_dataset(manifest, settings, options).write_datasink(sink)
    return BatchSummary(sink.counts, time.perf_counter() - started)


def build_dataset(manifest: pa.Table, settings: BatchSettings, options: BatchOptions
                  ) -> ray.data.Dataset:
    """The pipeline as a lazy Dataset of (`listing_id`, `answer`: the JSON text) rows."""
    url_fetch = settings.app_args.url_fetch
    limits = options.actor_limits(settings.app_args.limits)  # the decode budget, shared
    models = settings.models
    options.check(models)
    dataset: ray.data.Dataset = ray.data.from_arrow(_input_blocks(manifest, options.batch_size))
    dataset = dataset.map_batches(
        ReadImages, fn_constructor_args=(limits, url_fetch), batch_size=options.batch_size,
        batch_format="pyarrow", num_cpus=READ_CPUS,
        compute=ray.data.ActorPoolStrategy(size=options.read_actors),
    )
    for stage, actors, memory in ((ExtractAttributes, options.extract_actors, EXTRACTOR_MEMORY),
                                  (ScoreQuality, options.score_actors, SCORER_MEMORY)):
        dataset = dataset.map_batches(
            stage, fn_constructor_args=(models,), batch_size=options.batch_size,
            batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors),
            **options.model_actor_resources(MODEL_CPUS, memory),
        )
    listings = len(manifest.column("listing_id").unique())
    partitions = min(MAX_PARTITIONS, max(options.listing_actors,
                                         math.ceil(listings / LISTINGS_PER_PARTITION)))
    return dataset.groupby("listing_id", num_partitions=partitions).map_groups(
        AssessListings, fn_constructor_args=(settings.policy_texts, models, limits, url_fetch),
        batch_format="pyarrow", num_cpus=LISTING_CPUS, memory=LISTING_MEMORY.reserve(1),
        compute=ray.data.ActorPoolStrategy(size=options.listing_actors),
    )


def _input_blocks(manifest: pa.Table, batch_size: int) -> list[pa.Table]:
    """The manifest in slices, so that read actors work in parallel from the start."""
    rows = max(batch_size, math.ceil(manifest.num_rows / MAX_INPUT_BLOCKS))
    return [manifest.slice(start, rows) for start in range(0, manifest.num_rows, rows)]


def _tally(counter: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items()))
