"""The soak's figures over time: buckets by arrival, shed and 5xx counts, RSS growth."""

from __future__ import annotations

import pytest

from benchmarks.over_time import (
    bucket_figures,
    rss_at_bucket_ends,
    rss_growth,
    summarize_over_time,
)
from benchmarks.samples import UNFINISHED, Sample


def _sample(due: float, status: str = "200", latency_s: float = 0.1) -> Sample:
    return Sample(due, due, due + latency_s, status)


def test_requests_fall_in_the_bucket_of_their_arrival() -> None:
    samples = [
        _sample(9.0),  # warm-up: before the window
        _sample(10.0), _sample(69.9, latency_s=5.0),  # the answer comes in the next minute
        _sample(70.0, "429"), _sample(80.0, "503"), _sample(90.0, "500"),
        _sample(129.0, "client:TimeoutError"),
        _sample(131.0),  # drain: after the window
    ]
    buckets = summarize_over_time(samples, (10.0, 130.0), bucket_s=60.0)
    assert [(b["from_s"], b["to_s"], b["sent"]) for b in buckets] == [(0, 60, 2), (60, 120, 4)]
    assert buckets[0]["latency_ms"]["max"] == pytest.approx(5000.0)
    second = buckets[1]
    assert (second["ok"], second["shed"], second["errors_5xx"], second["other"]) == (0, 2, 2, 1)
    assert second["shed_share"] == pytest.approx(0.5)
    assert second["latency_ms"]["p99"] is None  # no 200 in it


def test_the_last_bucket_may_be_short() -> None:
    buckets = summarize_over_time([_sample(0.5), _sample(95.0)], (0.0, 100.0), bucket_s=60.0)
    assert [(b["from_s"], b["to_s"], b["sent"]) for b in buckets] == [(0, 60, 1), (60, 100, 1)]


def test_unfinished_requests_count_as_latency_lower_bounds() -> None:
    figures = bucket_figures([_sample(0.0, UNFINISHED, latency_s=30.0), _sample(1.0)])
    assert figures["ok"] == 1 and figures["other"] == 1
    assert figures["latency_ms"]["max"] == pytest.approx(30000.0)


def test_bucket_length_must_be_positive() -> None:
    with pytest.raises(ValueError):
        summarize_over_time([], (0.0, 10.0), bucket_s=0)


def test_rss_growth_counts_from_the_window_start() -> None:
    # Warm-up from 400 to 500 MiB, then 2% growth over the window.
    series = [(0.0, 400.0), (5.0, 500.0), (10.0, 500.0), (70.0, 505.0), (130.0, 510.0)]
    growth = rss_growth(series, window_start=10.0, window_end=130.0, recording_from=0.0)
    assert (growth["start_mib"], growth["end_mib"], growth["growth_mib"]) == (500, 510, 10)
    assert growth["growth_pct"] == pytest.approx(2.0)
    assert growth["slope_mib_per_min"] == pytest.approx(5.0)
    assert growth["trend_pct"] == pytest.approx(100 * 5.0 * 2 / 505, abs=0.01)
    assert growth["flat"] and not growth["started_late"]


def test_rss_growth_flags_a_leak_and_a_late_replica() -> None:
    series = [(20.0, 300.0), (60.0, 330.0), (100.0, 360.0)]
    growth = rss_growth(series, window_start=10.0, window_end=130.0, recording_from=0.0)
    assert not growth["flat"] and growth["started_late"]
    assert rss_growth(series, 200.0, 300.0, 0.0) == {"samples": 0}


def test_a_swing_at_the_end_is_not_a_leak_but_a_steady_climb_is() -> None:
    # The QualityScorer of the 2026-12-06 soak, one sample a minute: RSS follows the image in
    # hand; the last sample is 5.3% above the first, with no trend.
    swinging = [(60.0 * minute, mib) for minute, mib in
                enumerate([682, 689, 666, 676, 667, 667, 673, 685, 686, 662, 718])]
    growth = rss_growth(swinging, 0.0, 600.0, recording_from=0.0)
    assert growth["growth_pct"] > 5.0
    assert growth["flat"] and growth["trend_pct"] < 2.0
    # A leak of 4 MiB a minute under the same swings: +6% over ten minutes by its trend.
    leaking = [(moment, mib + 4.0 * moment / 60.0) for moment, mib in swinging]
    growth = rss_growth(leaking, 0.0, 600.0, recording_from=0.0)
    assert not growth["flat"] and growth["trend_pct"] > 5.0


def test_rss_at_bucket_ends_takes_the_last_sample_before_each_end() -> None:
    series = [(15.0, 100.0), (40.0, 110.0), (75.0, 120.0)]
    assert rss_at_bucket_ends(series, 10.0, [0.0, 30.0, 60.0, 120.0]) == [None, 110.0, 110.0,
                                                                          120.0]
