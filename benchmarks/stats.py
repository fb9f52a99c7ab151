"""Small summaries of samples: latency percentiles (linear interpolation, numpy's default) and
how far a percentile of a sample can be trusted; the model batches the service formed, rebuilt
from what each image reports; and CPU timings of two or more calls taken in turn."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import binom

PERCENTILES = (50, 95, 99)
CONFIDENCE = 0.95  # of the intervals around a percentile


def summarize_ms(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/mean/max of milliseconds; all None when there is no sample (never raises)."""
    keys = [f"p{p}" for p in PERCENTILES] + ["mean", "max"]
    if len(values_ms) == 0:
        return dict.fromkeys(keys)
    array = np.asarray(values_ms, dtype=float)
    summary: dict[str, float | None] = {
        f"p{p}": round(float(np.percentile(array, p)), 2) for p in PERCENTILES
    }
    summary["mean"] = round(float(array.mean()), 2)
    summary["max"] = round(float(array.max()), 2)
    return summary


def quantile_interval(values: Sequence[float], quantile: float, confidence: float = CONFIDENCE
                      ) -> tuple[float | None, float | None]:
    """A distribution-free interval around the `quantile` (0..1) of what `values` were drawn
    from: two of the sorted values, chosen so that the true quantile lies between them with at
    least `confidence` whatever the distribution (the count of values below it is binomial).
    A side is None when the sample is too small to bound it: at 0.99 and 95%, fewer than
    `samples_to_bound(0.99)` values set no upper bound, whatever they are."""
    if not 0.0 < quantile < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError("quantile and confidence must lie strictly between 0 and 1")
    ordered = np.sort(np.asarray(values, dtype=float))
    count = len(ordered)
    if count == 0:
        return None, None
    tail = (1.0 - confidence) / 2
    # 1-based ranks: P(lower rank <= values below the quantile < upper rank) >= confidence.
    lower_rank = int(binom.ppf(tail, count, quantile))
    upper_rank = int(binom.ppf(1.0 - tail, count, quantile)) + 1
    lower = float(ordered[lower_rank - 1]) if lower_rank >= 1 else None
    upper = float(ordered[upper_rank - 1]) if upper_rank <= count else None
    return lower, upper


def samples_to_bound(quantile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest values whose `quantile_interval` has an upper side: the chance that all of
    them fall below the quantile must be under half the interval's miss rate."""
    return int(np.ceil(np.log((1.0 - confidence) / 2) / np.log(quantile)))


def summarize_calls_ms(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/min of repeated timings of one call, ms; None when there is no sample."""
    if len(values_ms) == 0:
        return {"p50": None, "p95": None, "min": None}
    array = np.asarray(values_ms, dtype=float)
    return {"p50": round(float(np.percentile(array, 50)), 2),
            "p95": round(float(np.percentile(array, 95)), 2),
            "min": round(float(array.min()), 2)}


def cpu_ms_in_turn(calls: Mapping[str, Callable[[Any], object]], items: Sequence[Any],
                   rounds: int) -> dict[str, list[float]]:
    """CPU ms of each call on each item, the calls taken in turn item by item for `rounds`
    rounds, after one unmeasured call each on the first item: every call meets the same moments
    of a shared host's load, so their ratio holds where timings taken a minute apart do not."""
    for call in calls.values():
        call(items[0])
    cpu_ms: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for item in items:
            for name, call in calls.items():
                began = time.process_time()
                call(item)
                cpu_ms[name].append((time.process_time() - began) * 1000)
    return cpu_ms


def summarize_batch_sizes(sizes: Sequence[int]) -> dict[str, float | int | None]:
    """The batches a stage formed, from one value per image: the size of the batch it ran in.

    A batch of n images is reported by each of its n images, so `count / n` images reporting n
    are one batch each (exact when every image of the batch was seen; a batch cut by the
    window's edge makes the counts fractional). From those batches: `mean` (images per batch,
    the harmonic mean of the reported sizes), `p50` (the median batch) and `max`.
    `mean_per_image` is the plain mean of the reports: the batch size an average image saw,
    which weights big batches more and is always >= `mean`.
    """
    if len(sizes) == 0:
        return {"images": 0, "batches": None, "mean": None, "p50": None, "max": None,
                "mean_per_image": None}
    if min(sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {min(sizes)}")
    counts = Counter(int(size) for size in sizes)
    batches_by_size = {size: count / size for size, count in sorted(counts.items())}
    batches = sum(batches_by_size.values())
    half, running, median = batches / 2, 0.0, 0
    for size, weight in batches_by_size.items():
        running += weight
        if running >= half:
            median = size
            break
    return {
        "images": len(sizes),
        "batches": round(batches, 1),
        "mean": round(len(sizes) / batches, 2),
        "p50": median,
        "max": max(counts),
        "mean_per_image": round(sum(sizes) / len(sizes), 2),
    }
