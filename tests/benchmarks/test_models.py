"""The per-model figures' arithmetic, with a stand-in model (no runtime loaded)."""

from __future__ import annotations

import time

import pytest

from benchmarks.models import BatchFigure, _with_gains, batching_gain, time_calls


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
