"""The in-process limit: the stage classes the service runs, in ONE process with no Ray and no
HTTP, on the same images and with the same stage settings (the serve config's `args:`).

For each one-image listing it does what the ingress does per listing: the stages
(`curator.core.pipeline.LocalPipeline`: preprocess, attribute extractor, quality scorer), then
the rules and selection (`ListingAssessor.assess`). Its images/s is the denominator of the serving
efficiency. With `batch` > 1, that many listings go through the stages together (the stages'
batching), each then assessed on its own.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

import psutil

from benchmarks.images import BenchImage
from benchmarks.stats import summarize_ms

logger = logging.getLogger(__name__)

MAX_WARMUP_S = 15.0  # the warm-up stops here too (after at least one pass through the stages)
PROFILE_PASSES = 2  # passes over the images for the preprocess step profile


@dataclass
class InProcessResult:
    pipeline: str  # what was measured, in words
    batch: int  # listings per pass through the stages
    torch_threads: int | None  # torch's intra-op threads during the run (None: torch not loaded)
    listings: int  # measured, one image each
    elapsed_s: float
    # The fastest round's rate. Other load on the host only ever slows a round down, so the
    # fastest is the least disturbed estimate of the limit (timeit's minimum, for throughput);
    # it is also the conservative denominator for the serving efficiency.
    images_per_s: float
    median_images_per_s: float
    round_images_per_s: list[float]  # images answered "ok" per second, as the service's rate
    round_other_cores: list[float]  # host cores busy with other processes during each round
    image_errors: int  # images answered with status "error" (not counted in the rates)
    cpu_ms_per_image: float  # CPU time of this process (all its threads) per image
    cores_busy: float  # CPU seconds / wall seconds: OpenCV and the runtimes may use both cores
    listing_ms: dict[str, float | None]  # wall time per listing: stages + assess
    stage_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    preprocess_steps_ms: dict[str, dict[str, float | None]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_inprocess(
    images: list[BenchImage],
    app_args: dict[str, Any] | None = None,
    warmup: int = 16,
    duration_s: float = 40.0,
    rounds: int = 4,
    batch: int = 1,
    torch_threads: int = 1,
) -> InProcessResult:
    """`warmup` listings unmeasured (at most `MAX_WARMUP_S`), then `rounds` rounds of
    `duration_s / rounds` seconds each, cycling the images.

    `torch_threads` (0: torch's default, one per core) defaults to 1 because that is what the
    replicas get: Ray sets OMP_NUM_THREADS=1 in workers with fractional `num_cpus`, so torch runs
    one intra-op thread there. Measured on this 2-core host, the quality scorer with torch's
    default 2 threads spent ~15x the CPU per image, so leaving it would make the limit a strawman.
    """
    from curator.core.assessment import ListingAssessor
    from curator.core.settings import CuratorAppArgs
    from rules import load_policy_set

    settings = CuratorAppArgs.model_validate(app_args or {})
    assessor = ListingAssessor(load_policy_set(settings.policy_dir))
    # Built once for the whole run, as each replica holds its stage objects for its life.
    stages_run, description, pipeline = _stages(settings)
    batch = max(1, batch)
    torch = sys.modules.get("torch")
    if torch is not None and torch_threads > 0:
        torch.set_num_threads(torch_threads)

    def listings(first: int) -> tuple[list[dict[str, float]], int]:
        """`batch` one-image listings from index `first`: per-listing stage ms, error count."""
        chosen = [images[(first + offset) % len(images)] for offset in range(batch)]
        started = time.perf_counter()
        measured = stages_run([(image.image_id, image.jpeg) for image in chosen])
        staged = time.perf_counter()
        errors = 0
        assess_ms = []
        for offset, image in enumerate(measured):
            assess_started = time.perf_counter()
            # No fixer: no benchmark image is fixable (packshots pass, busy photos are
            # rejected), so the service runs no fix either and the two paths do the same work.
            response = asyncio.run(assessor.assess(
                listing_id=f"inproc-{first + offset}", category="home", marketplace="US",
                images=[image], roles=[None],
            ))
            assess_ms.append((time.perf_counter() - assess_started) * 1000)
            errors += response.images[0].status != "ok"
        stages_ms = (staged - started) * 1000 / batch
        per_listing = []
        for image, assessed in zip(measured, assess_ms, strict=True):
            stages = {f"stage.{name}": float(ms) for name, ms in (image.timings_ms or {}).items()}
            stages["assess"] = assessed
            stages["listing"] = stages_ms + assessed
            per_listing.append(stages)
        return per_listing, errors

    done = 0
    warmup_deadline = time.perf_counter() + MAX_WARMUP_S
    while done < warmup and (done == 0 or time.perf_counter() < warmup_deadline):
        done += len(listings(done)[0])

    round_s = duration_s / max(1, rounds)
    per_stage: dict[str, list[float]] = {}
    round_rates: list[float] = []
    round_others: list[float] = []
    failed = measured_count = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    for _ in range(max(1, rounds)):
        round_started = time.perf_counter()
        round_cpu, round_host = time.process_time(), _host_busy_s()
        in_round = round_failed = 0
        while in_round == 0 or time.perf_counter() - round_started < round_s:
            stages_list, errors = listings(measured_count + in_round)
            in_round += len(stages_list)
            round_failed += errors
            for stages in stages_list:
                for stage, ms in stages.items():
                    per_stage.setdefault(stage, []).append(ms)
        measured_count += in_round
        failed += round_failed
        round_wall = time.perf_counter() - round_started
        round_rates.append(round((in_round - round_failed) / round_wall, 2))
        others = (_host_busy_s() - round_host) - (time.process_time() - round_cpu)
        round_others.append(round(max(0.0, others) / round_wall, 2))
    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    if failed:
        logger.warning("%d in-process images came back with status error", failed)
    result = InProcessResult(
        pipeline=description,
        batch=batch,
        torch_threads=torch.get_num_threads() if torch is not None else None,
        listings=measured_count,
        elapsed_s=round(elapsed, 2),
        images_per_s=max(round_rates),
        median_images_per_s=round(statistics.median(round_rates), 2),
        round_images_per_s=round_rates,
        round_other_cores=round_others,
        image_errors=failed,
        cpu_ms_per_image=round(cpu_s * 1000 / measured_count, 2),
        cores_busy=round(cpu_s / elapsed, 2),
        listing_ms=summarize_ms(per_stage.pop("listing")),
        stage_ms={stage: summarize_ms(values) for stage, values in per_stage.items()},
        preprocess_steps_ms=profile_preprocess(images, pipeline.preprocessor),
        environment=_environment(pipeline),
    )
    logger.info("in-process: %d listings in %.1f s; rounds %s images/s (other load %s cores)",
                measured_count, elapsed, round_rates, round_others)
    return result


StagesRun = Callable[[list[tuple[str, bytes]]], list[Any]]


def _stages(settings: Any) -> tuple[StagesRun, str, Any]:
    """What the graph runs per image, in this process: the stages function, a description,
    and the object holding the stages (for `.preprocessor` and `.extractor`)."""
    from curator.core.measured import measure_locally
    from curator.core.pipeline import LocalPipeline

    if settings.models is None:  # the technical-only graph: Preprocess alone
        from models.decode import DecodeLimits
        from models.preprocess import Preprocessor

        holder = SimpleNamespace(preprocessor=Preprocessor(decode_limits=DecodeLimits(
            max_bytes=settings.limits.max_image_bytes,
            max_pixels=settings.limits.max_image_pixels,
        )), extractor=None)

        def preprocess_only(pairs: list[tuple[str, bytes]]) -> list[Any]:
            return [measure_locally(data, image_id, holder.preprocessor)
                    for image_id, data in pairs]

        return (preprocess_only, "measure_locally (technical-only graph, models: null); then "
                "ListingAssessor.assess", holder)
    # ONNX Runtime with one thread per core whatever the config's cpu_threads: one process
    # working listing by listing is fastest so, which keeps the efficiency's denominator the
    # highest (the conservative one).
    stages = settings.models.model_copy(update={"cpu_threads": 0})
    pipeline = LocalPipeline(stages=stages, limits=settings.limits)
    description = (
        f"LocalPipeline: preprocess, extractor ({', '.join(stages.extractor_models)}, ONNX "
        f"Runtime threads: one per core), scorer ({stages.scorer_card}); then "
        "ListingAssessor.assess"
    )
    return pipeline.run, description, pipeline


def profile_preprocess(images: list[BenchImage], preprocessor: Any) -> dict[str, dict]:
    """Where the preprocess stage's time goes, step by step (its own `timings_ms`), from a
    separate short pass: the pipeline keeps only the stage's total."""
    steps: dict[str, list[float]] = {}
    for _ in range(PROFILE_PASSES):
        for image in images:
            result = preprocessor.run(image.jpeg, image_id=image.image_id)
            for step, ms in result.timings_ms.items():
                steps.setdefault(step, []).append(ms)
    return {step: summarize_ms(values) for step, values in steps.items()}


def _host_busy_s() -> float:
    """CPU seconds the whole machine has spent not idle, summed over cores."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _environment(pipeline: Any) -> dict[str, Any]:
    """Runtimes and thread pools the numbers depend on."""
    info: dict[str, Any] = {}
    try:
        import cv2

        info["opencv_threads"] = cv2.getNumThreads()
    except ImportError:
        pass
    runtime_info = getattr(pipeline.extractor, "runtime_info", None)
    if isinstance(runtime_info, dict):
        info["extractor_runtimes"] = {
            name: value.as_dict() if hasattr(value, "as_dict") else str(value)
            for name, value in runtime_info.items()
        }
    return info
