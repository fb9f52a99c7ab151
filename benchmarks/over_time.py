"""Figures over time for the soak: a long open-loop level cut into buckets (answers, 5xx, shed
share, p99 per bucket), and each replica's RSS growth after the warm-up. Arithmetic only, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import theilslopes

from benchmarks.samples import UNFINISHED, Sample
from benchmarks.stats import summarize_ms

# Answers that turned a listing away on purpose: admission control's 429, and the 503 Serve's
# proxy gives when a deployment's queue is full. Both ask the client to come back later.
SHED_STATUSES = frozenset({"429", "503"})
# A replica whose RSS trend over the soak adds no more than this share of its median RSS is flat:
# allocator noise and lazily loaded pages, not a leak.
FLAT_GROWTH_PCT = 5.0


def bucket_figures(samples: Sequence[Sample]) -> dict[str, Any]:
    """Answers, 5xx, shed, and latency of the samples of one bucket (or of a whole soak)."""
    statuses = [sample.status for sample in samples]
    answered = [s for s in samples if s.status == "200" or s.status == UNFINISHED]
    shed = sum(1 for status in statuses if status in SHED_STATUSES)
    return {
        "sent": len(samples),
        "ok": statuses.count("200"),
        "errors_5xx": sum(1 for status in statuses if status.startswith("5")),
        "shed": shed,
        "shed_share": round(shed / len(samples), 4) if samples else 0.0,
        "other": sum(1 for status in statuses
                     if status != "200" and status not in SHED_STATUSES
                     and not status.startswith("5")),
        # Of 200 answers, and of requests still unanswered when the drain ended (lower bounds).
        "latency_ms": summarize_ms([(s.finished - s.due) * 1000 for s in answered]),
    }


def summarize_over_time(samples: Sequence[Sample], window: tuple[float, float],
                        bucket_s: float) -> list[dict[str, Any]]:
    """The window cut into buckets of `bucket_s` (the last one may be shorter), each request in
    the bucket of its arrival (`due`), as the open loop counts them."""
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    start, end = window
    buckets: list[list[Sample]] = [[] for _ in range(max(1, int(np.ceil((end - start)
                                                                          / bucket_s - 1e-9))))]
    for sample in samples:
        if start <= sample.due < end:
            buckets[min(len(buckets) - 1, int((sample.due - start) // bucket_s))].append(sample)
    return [{"from_s": round(index * bucket_s, 1),
             "to_s": round(min((index + 1) * bucket_s, end - start), 1),
             **bucket_figures(bucket)} for index, bucket in enumerate(buckets)]


def rss_growth(series: Sequence[tuple[float, float]], window_start: float,
               window_end: float, recording_from: float) -> dict[str, Any]:
    """One replica's RSS (`(moment, MiB)` samples) over the soak window: RSS at the window's start
    (after the warm-up) and end, growth in MiB and %, the trend in MiB per minute, and whether it
    stayed flat. `started_late`: the replica was not there at the first sample
    (`recording_from`) but came up later (the autoscaler added it, or Serve restarted one), so
    its own warm-up may count as growth.

    The verdict reads the trend, not end minus start: a scorer's RSS swings by ±4% with the size
    of the image in hand (2026-12-06 soak: 682 -> 662 -> 718 MiB in the last three minutes, no
    trend), so one high last sample must not read as a leak, while a steady leak must. The
    Theil-Sen slope (the median of the pairwise slopes) ignores such swings; `flat` is that slope
    over the window's length against the median RSS."""
    inside = [(moment, mib) for moment, mib in series if window_start <= moment <= window_end]
    if not inside:
        return {"samples": 0}
    moments = np.array([moment for moment, _ in inside])
    values = np.array([mib for _, mib in inside])
    growth = float(values[-1] - values[0])
    growth_pct = 100.0 * growth / float(values[0]) if values[0] > 0 else 0.0
    minutes = (moments - moments[0]) / 60.0
    slope = (float(theilslopes(values, minutes).slope)
             if len(inside) >= 3 and minutes[-1] > 0 else 0.0)
    median = float(np.median(values))
    trend_pct = 100.0 * slope * float(minutes[-1]) / median if median > 0 else 0.0
    return {
        "samples": len(inside),
        "start_mib": round(float(values[0]), 1),
        "end_mib": round(float(values[-1]), 1),
        "peak_mib": round(float(values.max()), 1),
        "growth_mib": round(growth, 1),
        "growth_pct": round(growth_pct, 2),
        "slope_mib_per_min": round(slope, 2),
        "trend_pct": round(trend_pct, 2),
        "flat": trend_pct <= FLAT_GROWTH_PCT,
        "started_late": series[0][0] > recording_from,
    }


def rss_at_bucket_ends(series: Sequence[tuple[float, float]], window_start: float,
                       bucket_ends_s: Sequence[float]) -> list[float | None]:
    """The last RSS sample at or before each bucket's end (None before the replica's first)."""
    values: list[float | None] = []
    for end_s in bucket_ends_s:
        before = [mib for moment, mib in series if moment <= window_start + end_s]
        values.append(before[-1] if before else None)
    return values
