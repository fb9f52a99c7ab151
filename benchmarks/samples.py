"""What one request under load leaves behind (`Sample`), and one load level's figures from them
(`LevelResult`): the same arithmetic for the closed loop and the open loop, with no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from benchmarks.stats import quantile_interval, summarize_batch_sizes, summarize_ms

UNFINISHED = "client:unfinished"  # open loop: still in flight when the drain ended
REFUSED = "429"  # shed by the ingress's admission control: not an error, not a latency
MODEL_STAGES = ("extractor", "scorer")  # the stages whose formed batches are reported


@dataclass(frozen=True)
class Answer:
    """What the load generator keeps of a 200 body of `POST /v1/assess`."""

    images_ok: int = 0
    image_errors: int = 0
    batch_sizes: tuple[dict[str, int], ...] = ()  # per image: stage -> batch it ran in
    timings_ms: tuple[dict[str, float], ...] = ()  # per image: stage -> ms inside the stage


@dataclass(frozen=True)
class Sample:
    due: float  # when the request was meant to go: closed loop, when it went; open loop, its
    # Poisson arrival. Latency is counted from here, so a late client cannot hide queueing.
    started: float  # when it was sent
    finished: float  # when the whole body was read (or it failed, or the drain gave up on it)
    status: str  # "200", "429", "503", "client:TimeoutError", UNFINISHED, ...
    answer: Answer = Answer()
    retry_after_s: float | None = None  # a 429's Retry-After


def parse_answer(content: bytes) -> Answer:
    """Images ok and in error, and each image's `batch_sizes` and `timings_ms` (batch sizes are
    absent on the technical-only graph and on failed images)."""
    ok = errors = 0
    sizes: list[dict[str, int]] = []
    timings: list[dict[str, float]] = []
    for image in json.loads(content).get("images", []):
        if image.get("status") == "ok":
            ok += 1
        else:
            errors += 1
        reported = image.get("batch_sizes")
        if isinstance(reported, dict) and reported:
            sizes.append({str(stage): int(size) for stage, size in reported.items()})
        spent = image.get("timings_ms")
        if isinstance(spent, dict) and spent:
            timings.append({str(stage): float(ms) for stage, ms in spent.items()})
    return Answer(ok, errors, tuple(sizes), tuple(timings))


@dataclass
class LevelResult:
    """One load level: a closed loop at `concurrency`, or an open loop offered `offered_per_s`.

    Throughput counts the requests that completed inside the measured window. The requests whose
    latency and errors are counted are, in the closed loop, those that completed in the window;
    in the open loop, those that arrived in it (so the slow ones that finish after the window are
    not lost).
    """

    mode: Literal["closed", "open"]
    concurrency: int | None  # closed loop
    offered_per_s: float | None  # open loop: listings/s offered (Poisson arrivals)
    window_s: float
    listings: int  # completed in the window, any status
    images_ok: int  # images answered with status "ok" in a 200 response
    listings_per_s: float
    images_per_s: float  # images of 200 responses per second (one image per listing here)
    latency_ms: dict[str, float | None]  # of 200 responses (open loop: and unfinished ones)
    latency_is_lower_bound: bool  # unfinished requests entered the latencies as lower bounds
    status_counts: dict[str, int]  # "200", "503", "client:TimeoutError", ...
    errors_5xx: int
    errors_other: int  # 4xx but 429, and client-side failures (timeouts, unfinished, ...)
    refused: int  # 429: shed by admission control, the client retried later
    refused_share: float  # of the requests counted: what share load shedding turned away
    image_errors: int  # images with status "error" inside a 200 response
    batch_sizes: dict[str, dict[str, float | int | None]]  # stage -> formed batches
    stage_ms: dict[str, dict[str, float | None]]  # stage -> its own timings_ms, in the service
    sent_total: int  # all requests, warm-up and drain included
    client_cpu_s: float  # CPU seconds the load-generator process used for this level
    run_s: float  # wall seconds of the level: warm-up, window and drain
    extra: dict[str, Any] = field(default_factory=dict)
    # How many latencies the percentiles come from, and the 95% interval around their p99
    # (`stats.quantile_interval`): a side is None where too few answers bound it.
    latency_samples: int = 0
    p99_interval_ms: tuple[float | None, float | None] = (None, None)

    @property
    def load(self) -> str:
        return (f"c={self.concurrency}" if self.mode == "closed"
                else f"{self.offered_per_s:.2f}/s")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_level(
    samples: Sequence[Sample],
    window: tuple[float, float],
    *,
    concurrency: int | None = None,
    offered_per_s: float | None = None,
    client_cpu_s: float = 0.0,
    run_s: float = 0.0,
) -> LevelResult:
    """Closed loop when `offered_per_s` is None, open loop otherwise."""
    window_start, window_end = window
    window_s = window_end - window_start
    open_loop = offered_per_s is not None

    def in_window(moment: float) -> bool:
        return window_start <= moment <= window_end

    completed = [s for s in samples if s.status != UNFINISHED and in_window(s.finished)]
    counted = [s for s in samples if in_window(s.due)] if open_loop else completed
    counted_ids = {id(s) for s in counted}
    # 5xx during warm-up or drain must not hide behind the window.
    outside_5xx = sum(1 for s in samples if s.status.startswith("5") and id(s) not in counted_ids)
    status_counts: dict[str, int] = {}
    for sample in counted:
        status_counts[sample.status] = status_counts.get(sample.status, 0) + 1
    succeeded = [s for s in counted if s.status == "200"]
    unfinished = [s for s in counted if s.status == UNFINISHED]
    errors_5xx = sum(n for status, n in status_counts.items() if status.startswith("5"))
    stage_sizes: dict[str, list[int]] = {stage: [] for stage in MODEL_STAGES}
    stage_ms: dict[str, list[float]] = {}
    for sample in succeeded:
        for image_sizes in sample.answer.batch_sizes:
            for stage, size in image_sizes.items():
                stage_sizes.setdefault(stage, []).append(size)
        for image_ms in sample.answer.timings_ms:
            for stage, ms in image_ms.items():
                stage_ms.setdefault(stage, []).append(ms)
    images_ok = sum(s.answer.images_ok for s in completed if s.status == "200")
    latencies_ms = [(s.finished - s.due) * 1000 for s in succeeded + unfinished]
    extra: dict[str, Any] = {"5xx_outside_window": outside_5xx} if outside_5xx else {}
    if open_loop and counted:
        # How late the client sent (its own CPU starvation on a shared host), and the latency
        # without that lag: the figures that tell the client's share from the service's.
        extra["send_lag_ms"] = summarize_ms([(s.started - s.due) * 1000 for s in counted])
        extra["latency_from_send_ms"] = summarize_ms(
            [(s.finished - s.started) * 1000 for s in succeeded + unfinished])
    return LevelResult(
        mode="open" if open_loop else "closed",
        concurrency=concurrency,
        offered_per_s=round(offered_per_s, 3) if offered_per_s is not None else None,
        window_s=round(window_s, 2),
        listings=len(completed),
        images_ok=images_ok,
        listings_per_s=round(len(completed) / window_s, 2),
        images_per_s=round(images_ok / window_s, 2),
        latency_ms=summarize_ms(latencies_ms),
        latency_is_lower_bound=bool(unfinished),
        status_counts=dict(sorted(status_counts.items())),
        errors_5xx=errors_5xx,
        errors_other=sum(n for status, n in status_counts.items()
                         if status not in ("200", REFUSED) and not status.startswith("5")),
        refused=status_counts.get(REFUSED, 0),
        refused_share=round(status_counts.get(REFUSED, 0) / len(counted), 3) if counted else 0.0,
        image_errors=sum(s.answer.image_errors for s in succeeded),
        batch_sizes={stage: summarize_batch_sizes(sizes) for stage, sizes in stage_sizes.items()
                     if sizes},
        stage_ms={stage: summarize_ms(values) for stage, values in stage_ms.items()},
        sent_total=len(samples),
        client_cpu_s=round(client_cpu_s, 2),
        run_s=round(run_s, 2),
        extra=extra,
        latency_samples=len(latencies_ms),
        p99_interval_ms=_rounded(quantile_interval(latencies_ms, 0.99)),
    )


def _rounded(interval: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
    low, high = interval
    return (None if low is None else round(low, 2), None if high is None else round(high, 2))
