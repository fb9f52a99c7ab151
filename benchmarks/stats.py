"""Small summaries of samples: latency percentiles (linear interpolation, numpy's default) and
the model batches the service formed, rebuilt from what each image reports; and CPU timings of
two or more calls taken in turn."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

PERCENTILES = (50, 95, 99)


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
