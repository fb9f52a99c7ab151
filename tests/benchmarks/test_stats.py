"""Latency summaries and the formed-batch reconstruction, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.stats import (
    cpu_ms_in_turn,
    quantile_interval,
    samples_to_bound,
    summarize_batch_sizes,
    summarize_calls_ms,
    summarize_ms,
)


def test_summarize_ms_interpolates_linearly() -> None:
    summary = summarize_ms([10.0, 20.0, 30.0, 40.0, 50.0])
    assert summary == {"p50": 30.0, "p95": 48.0, "p99": 49.6, "mean": 30.0, "max": 50.0}


def test_summarize_ms_without_samples_is_all_none() -> None:
    assert set(summarize_ms([]).values()) == {None}


def test_quantile_interval_of_a_p99_needs_enough_values_for_an_upper_side() -> None:
    assert samples_to_bound(0.99) == 368  # 0.99 ** 368 < 0.025 < 0.99 ** 367
    values = [float(v) for v in range(1, 78)]  # 77 values, shuffled order does not matter
    assert quantile_interval(values[::-1], 0.99) == (74.0, None)
    assert quantile_interval([float(v) for v in range(1, 368)], 0.99)[1] is None
    assert quantile_interval([float(v) for v in range(1, 369)], 0.99) == (360.0, 368.0)


def test_quantile_interval_of_a_median() -> None:
    # 100 values: ranks 40 and 61 hold the median with >= 95% (the binomial's 2.5% tails).
    assert quantile_interval([float(v) for v in range(1, 101)], 0.5) == (40.0, 61.0)
    assert quantile_interval([], 0.5) == (None, None)
    with pytest.raises(ValueError, match="strictly between"):
        quantile_interval([1.0], 1.0)


def test_quantile_interval_covers_the_true_p99_at_least_95_percent_of_the_time() -> None:
    # Exponential latencies: the true p99 is ln(100) x the mean. Seeded, so it cannot flake.
    rng = np.random.default_rng(7)
    true_p99 = float(np.log(100.0))
    trials = 2000
    covered = 0
    for _ in range(trials):
        low, high = quantile_interval(rng.exponential(1.0, 500), 0.99)
        assert low is not None and high is not None
        covered += low <= true_p99 <= high
    assert covered / trials >= 0.94  # nominal >= 0.95; 2000 trials leave ~0.005 of noise


def test_summarize_calls_ms() -> None:
    assert summarize_calls_ms([3.0, 1.0, 2.0]) == {"p50": 2.0, "p95": 2.9, "min": 1.0}
    assert summarize_calls_ms([]) == {"p50": None, "p95": None, "min": None}


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        pytest.param([1, 1, 1], {"images": 3, "batches": 3.0, "mean": 1.0, "p50": 1, "max": 1,
                                 "mean_per_image": 1.0}, id="all-alone"),
        # One batch of 1 and one of 3: 2 batches of 2 images on average; an image saw 2.5.
        pytest.param([1, 3, 3, 3], {"images": 4, "batches": 2.0, "mean": 2.0, "p50": 1,
                                    "max": 3, "mean_per_image": 2.5}, id="one-and-three"),
        # Batches 2, 2, 4: the median batch is 2; an image saw (2*4 + 4*4) / 8 = 3.
        pytest.param([2, 2, 2, 2, 4, 4, 4, 4], {"images": 8, "batches": 3.0, "mean": 2.67,
                                                "p50": 2, "max": 4, "mean_per_image": 3.0},
                     id="two-two-four"),
        pytest.param([], {"images": 0, "batches": None, "mean": None, "p50": None,
                          "max": None, "mean_per_image": None}, id="none"),
    ],
)
def test_summarize_batch_sizes(sizes: list[int], expected: dict) -> None:
    assert summarize_batch_sizes(sizes) == expected


def test_summarize_batch_sizes_refuses_zero() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        summarize_batch_sizes([0, 1])


def test_calls_in_turn_alternate_item_by_item_after_one_warm_up_each() -> None:
    order: list[tuple[str, int]] = []
    calls = {name: (lambda item, name=name: order.append((name, item))) for name in ("a", "b")}
    cpu_ms = cpu_ms_in_turn(calls, [1, 2], rounds=2)
    assert order == [("a", 1), ("b", 1),  # the unmeasured warm-up
                     ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert {name: len(times) for name, times in cpu_ms.items()} == {"a": 4, "b": 4}
    assert all(ms >= 0 for times in cpu_ms.values() for ms in times)
