"""Small summaries of latency samples. Percentiles by linear interpolation (numpy's default)."""

from __future__ import annotations

from collections.abc import Sequence

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
