"""The per-model figures' arithmetic, with a stand-in model (no runtime loaded), and the paired
BRISQUE kernels on the real model."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pytest

from benchmarks.models import (
    BatchFigure,
    _with_gains,
    batching_gain,
    pair_brisque_kernels,
    time_calls,
)
from benchmarks.render import render_models


@pytest.mark.parametrize(
    ("at_1", "at_n", "gain"),
    [(40.0, 10.0, 4.0), (25.7, 43.8, 0.59), (None, 10.0, None), (40.0, 0.0, None)],
    ids=["four-times", "slower-batched", "no-batch-1", "zero"],
)
def test_batching_gain(at_1: float | None, at_n: float | None, gain: float | None) -> None:
    assert batching_gain(at_1, at_n) == gain


def test_time_calls_warms_up_then_measures_per_image() -> None:
    calls: list[int] = []

    def model() -> None:
        calls.append(1)
        time.sleep(0.004)

    figure = time_calls(model, batch=4, min_calls=3, min_s=0.0)
    assert len(calls) == figure.calls + 1 == 4  # one warm-up call, not measured
    assert figure.ms_per_image["p50"] == pytest.approx(1.0, abs=0.9)  # 4 ms / 4 images
    assert figure.images_per_s is not None and figure.gain is None


def test_gains_relative_to_batch_1() -> None:
    cells = [BatchFigure(batch, 3, {"p50": ms, "p95": ms, "min": ms}, 1000 / ms, 1.0, None)
             for batch, ms in ((1, 40.0), (8, 20.0), (32, 10.0))]
    assert [cell.gain for cell in _with_gains(cells)] == [1.0, 2.0, 4.0]


def test_brisque_kernels_are_paired_on_the_same_regions() -> None:
    rng = np.random.default_rng(5)
    regions = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
               np.full((40, 40, 3), 200, np.uint8)]
    paired = pair_brisque_kernels(regions, rounds=2)
    assert (paired.images, paired.rounds) == (2, 2)
    assert paired.opencv_cpu_ms["p50"] is not None and paired.torch_cpu_ms["p50"] is not None
    assert paired.speedup == pytest.approx(
        paired.torch_cpu_ms["p50"] / paired.opencv_cpu_ms["p50"], abs=0.01)
    assert 0.0 <= paired.max_score_difference < 0.05
    line = "\n".join(render_models({"images": 2, "elapsed_s": 1.0, "models": [],
                                    "brisque_kernels": asdict(paired)}))
    assert f"{paired.speedup:.2f}x" in line and "2 product regions x 2" in line
