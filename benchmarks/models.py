"""Per-model figures: each model the full graph runs (text detector, people detector, BRISQUE
quality scorer) called directly, in this process, on the model inputs of the benchmark images, at
batch 1, 8 and 32.

Each (model, batch) cell: one unmeasured call (the first call at a new batch shape allocates),
then the same batch again and again until at least `min_calls` calls and `min_s` seconds. A
call's wall time divided by the batch is its ms per image; the cell reports the median and p95
of those, images/s at the median, the CPU cores the calls kept busy, and the gain of batching:
ms per image at batch 1 / ms per image at batch N (medians).

Threads as in the replicas: torch runs 1 intra-op thread for the scorer (Ray sets
OMP_NUM_THREADS=1 in workers with fractional `num_cpus`); ONNX Runtime and OpenCV keep their
defaults, as the replicas do.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import psutil

from benchmarks.images import BenchImage
from benchmarks.stats import cpu_ms_in_turn, summarize_calls_ms

logger = logging.getLogger(__name__)

MODEL_BATCHES = (1, 8, 32)
MIN_CALLS = 3  # per cell, after the warm-up call
MIN_MEASURE_S = 2.0  # per cell: small batches repeat until this much time has been measured
MAX_CALLS = 40  # per cell, however fast the calls are


@dataclass
class BatchFigure:
    batch: int
    calls: int  # measured calls
    ms_per_image: dict[str, float | None]  # p50, p95, min over calls of (call ms / batch)
    images_per_s: float | None  # 1000 / median ms per image
    cores_busy: float  # CPU seconds of this process / wall seconds, over the measured calls
    gain: float | None  # median ms/image at batch 1 / at this batch (None without batch 1)


@dataclass
class ModelFigure:
    model: str  # what it is, in words
    artifact: str
    runtime: str  # runtime, device, precision
    threads: str  # the thread setting the figures were measured with
    batches: list[BatchFigure]
    # "stage": a model the config runs; "before": the text detector in FP32, as the extractor ran
    # it before INT8, measured in the same run so the stage's CPU budget compares on one host.
    role: str = "stage"


@dataclass
class PairedKernels:
    """BRISQUE's CPU kernels against its torch passes, image by image in turn on the same
    product regions (as the scorer crops them), so that both see the host at the same speed."""

    images: int
    rounds: int
    opencv_cpu_ms: dict[str, float | None]  # per image: p50, p95, ...
    torch_cpu_ms: dict[str, float | None]
    speedup: float | None  # torch p50 / opencv p50
    max_score_difference: float  # BRISQUE points, over the regions


@dataclass
class ModelsResult:
    images: int  # distinct images whose model inputs make up the batches
    torch_threads: int  # torch intra-op threads during the scorer's figures
    elapsed_s: float
    models: list[ModelFigure]
    brisque_kernels: PairedKernels | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batching_gain(ms_at_1: float | None, ms_at_n: float | None) -> float | None:
    """How many times cheaper an image is in a batch of N than alone; None without data."""
    if not ms_at_1 or not ms_at_n:
        return None
    return round(ms_at_1 / ms_at_n, 2)


def time_calls(
    call: Callable[[], object], batch: int, min_calls: int = MIN_CALLS,
    min_s: float = MIN_MEASURE_S, max_calls: int = MAX_CALLS,
) -> BatchFigure:
    """One warm-up call, then measured calls; `gain` is left for the caller to fill."""
    call()
    per_image_ms: list[float] = []
    cpu_started, started = time.process_time(), time.perf_counter()
    while len(per_image_ms) < max_calls and (
        len(per_image_ms) < min_calls or time.perf_counter() - started < min_s
    ):
        call_started = time.perf_counter()
        call()
        per_image_ms.append((time.perf_counter() - call_started) * 1000 / batch)
    wall_s = time.perf_counter() - started
    summary = summarize_calls_ms(per_image_ms)
    median = summary["p50"]
    return BatchFigure(
        batch=batch, calls=len(per_image_ms), ms_per_image=summary,
        images_per_s=round(1000 / median, 2) if median else None,
        cores_busy=round((time.process_time() - cpu_started) / wall_s, 2), gain=None,
    )


def pair_brisque_kernels(regions: Sequence[Any], rounds: int = 3) -> PairedKernels:
    """CPU ms of one BRISQUE score per region with each kernel, called in turn (opencv, torch,
    opencv, ...; `cpu_ms_in_turn`), and how far their scores differ; the caller sets the
    threads."""
    from models.brisque import Brisque, BrisqueConfig

    kernels = {name: Brisque.from_artifacts(config=BrisqueConfig(cpu_kernels=name))
               for name in ("opencv", "torch")}
    scores = {name: model.score(regions) for name, model in kernels.items()}  # untimed
    cpu_ms = cpu_ms_in_turn(
        {name: lambda region, model=model: model.score([region])  # type: ignore[misc]
         for name, model in kernels.items()}, regions, rounds)
    opencv, torch_passes = (summarize_calls_ms(cpu_ms[name]) for name in ("opencv", "torch"))
    return PairedKernels(
        images=len(regions), rounds=rounds, opencv_cpu_ms=opencv, torch_cpu_ms=torch_passes,
        speedup=round(torch_passes["p50"] / opencv["p50"], 2)
        if opencv["p50"] and torch_passes["p50"] else None,
        max_score_difference=round(float(np.abs(scores["opencv"] - scores["torch"]).max()), 4),
    )


def _with_gains(figures: list[BatchFigure]) -> list[BatchFigure]:
    single = next((f.ms_per_image["p50"] for f in figures if f.batch == 1), None)
    for figure in figures:
        figure.gain = batching_gain(single, figure.ms_per_image["p50"])
    return figures


def measure_models(
    images: list[BenchImage],
    app_args: dict[str, Any] | None = None,
    batches: Sequence[int] = MODEL_BATCHES,
    torch_threads: int = 1,
    min_calls: int = MIN_CALLS,
    min_s: float = MIN_MEASURE_S,
) -> ModelsResult:
    """The models of the config's `args.models` (the defaults when the config has none)."""
    import torch

    from curator.core.measured import measure_locally
    from curator.core.pipeline import build_extractor, build_preprocessor, build_scorer
    from curator.core.settings import CuratorAppArgs, ModelStageSettings
    from models.scorer import product_region

    started = time.perf_counter()
    settings = CuratorAppArgs.model_validate(app_args or {})
    stages = settings.models or ModelStageSettings.model_validate({})
    usable = sorted(b for b in set(batches) if 1 <= b <= stages.max_batch_size_limit)
    if len(usable) < len(set(batches)):
        logger.warning("batches above max_batch_size_limit %d skipped",
                       stages.max_batch_size_limit)
    preprocessor = build_preprocessor()
    measured = [measure_locally(image.jpeg, image.image_id, preprocessor, keep_model_inputs=True)
                for image in images]
    ready = [item for item in measured if item.ok and item.model_inputs is not None]
    if not ready:
        raise RuntimeError("no benchmark image made it through preprocessing")

    def batch_of(size: int) -> list[Any]:
        return [ready[index % len(ready)] for index in range(size)]

    extractor = build_extractor(stages.extractor_models, stages.runtime_request())
    onnx_threads = ("the runtime's default intra-op threads (ONNX Runtime: one per physical "
                    f"core, {psutil.cpu_count(logical=False)} here; the replicas' sessions use "
                    "the same default)")
    figures: list[ModelFigure] = []
    for name, detector in extractor.detectors.items():
        info = detector.runtime_info
        cells = []
        for size in usable:
            inputs = [item.model_inputs for item in batch_of(size)]
            cells.append(time_calls(partial(detector.detect, inputs), size, min_calls, min_s))
            logger.info("model %s batch %d: %s ms/image", name, size, cells[-1].ms_per_image)
        figures.append(ModelFigure(
            model=f"{name} detector", artifact=info.model,
            runtime=f"{info.runtime} on {info.device}, {info.precision}",
            threads=onnx_threads, batches=_with_gains(cells),
        ))
    text = extractor.detectors.get("text")
    if text is not None and text.runtime_info.precision != "fp32":
        reference = build_extractor(
            ["text"], replace(stages.runtime_request(), cpu_precision="fp32"))
        detector = reference.detectors["text"]
        cells = [time_calls(partial(detector.detect, [item.model_inputs
                                                      for item in batch_of(size)]),
                            size, min_calls, min_s) for size in usable]
        info = detector.runtime_info
        figures.append(ModelFigure(
            model="text detector FP32", artifact=info.model,
            runtime=f"{info.runtime} on {info.device}, {info.precision}",
            threads=onnx_threads, batches=_with_gains(cells), role="before",
        ))
        del reference
    del extractor

    kernels = None
    previous_threads = torch.get_num_threads()
    if torch_threads > 0:  # 0: torch's own default, one thread per core
        torch.set_num_threads(torch_threads)
    used_threads = torch.get_num_threads()
    try:
        scorer = build_scorer(stages.scorer_card)
        cells = []
        for size in usable:
            pairs = [(item.model_inputs, item.attributes) for item in batch_of(size)]
            cells.append(time_calls(partial(scorer.score, pairs), size, min_calls, min_s))
            logger.info("model scorer batch %d: %s ms/image", size, cells[-1].ms_per_image)
        figures.append(ModelFigure(
            model="quality scorer (BRISQUE)", artifact=scorer.card.name,
            runtime=f"torch {torch.__version__} on {scorer.device}",
            threads=f"torch intra-op threads {used_threads}"
                    + (" (set to 1 as in the replicas, where Ray sets OMP_NUM_THREADS=1)"
                       if torch_threads == 1 else ""),
            batches=_with_gains(cells),
        ))
        del scorer
        if torch_threads == 1:  # the replicas' threads, or the pairing means nothing
            kernels = pair_brisque_kernels([product_region(item.model_inputs) for item in ready
                                            if item.model_inputs is not None])
            logger.info("BRISQUE kernels, paired: %s", kernels)
    finally:
        torch.set_num_threads(previous_threads)
    gc.collect()
    return ModelsResult(images=len(ready), torch_threads=used_threads,
                        elapsed_s=round(time.perf_counter() - started, 1), models=figures,
                        brisque_kernels=kernels)
