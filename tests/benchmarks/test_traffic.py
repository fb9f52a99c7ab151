"""Request bodies, answers and level summaries: what the load generator sends and counts."""

from __future__ import annotations

import json
import random

import pytest

from benchmarks.samples import UNFINISHED, Answer, Sample, parse_answer, summarize_level
from benchmarks.traffic import MAX_REFUSED_BACKOFF_S, Payload, refused_backoff_s


def test_payload_body_is_the_listing_json() -> None:
    payload = Payload.build("img-1", "QUJD", category="home", marketplace="US")
    assert json.loads(payload.body("listing-7")) == {
        "listing_id": "listing-7", "category": "home", "marketplace": "US",
        "images": [{"image_id": "img-1", "data": "QUJD"}],
    }


def test_parse_answer_counts_images_and_batch_sizes() -> None:
    body = json.dumps({"images": [
        {"status": "ok", "batch_sizes": {"extractor": 4, "scorer": 2},
         "timings_ms": {"preprocess": 18.5, "extractor": 70.0, "scorer": 40.0}},
        {"status": "error"},
        {"status": "ok", "batch_sizes": None, "timings_ms": {"preprocess": 16.0}},
    ]}).encode()
    assert parse_answer(body) == Answer(
        2, 1, ({"extractor": 4, "scorer": 2},),
        ({"preprocess": 18.5, "extractor": 70.0, "scorer": 40.0}, {"preprocess": 16.0}))


def test_parse_answer_rejects_non_json() -> None:
    with pytest.raises(ValueError):
        parse_answer(b"<html>")


def _ok(due: float, finished: float, sizes: dict[str, int] | None = None) -> Sample:
    timings = ({"preprocess": 20.0},)
    return Sample(due, due, finished, "200", Answer(1, 0, (sizes,) if sizes else (), timings))


def test_closed_loop_counts_what_finished_in_the_window() -> None:
    samples = [
        _ok(0.0, 0.5),  # warm-up: not counted
        _ok(0.9, 1.2, {"extractor": 2, "scorer": 1}),
        _ok(1.0, 1.4, {"extractor": 2, "scorer": 1}),
        Sample(1.5, 1.5, 1.6, "503"),
        Sample(2.9, 2.9, 3.5, "500"),  # drained after the window: still a 5xx
    ]
    level = summarize_level(samples, (1.0, 3.0), concurrency=2)
    assert (level.mode, level.listings, level.images_ok, level.images_per_s) == \
        ("closed", 3, 2, 1.0)
    assert level.errors_5xx == 1
    assert level.extra == {"5xx_outside_window": 1}
    assert level.latency_ms["max"] == 400.0
    assert level.batch_sizes["extractor"]["mean"] == 2.0
    assert level.batch_sizes["scorer"]["mean"] == 1.0
    assert level.stage_ms["preprocess"]["p50"] == 20.0
    assert level.load == "c=2"


def test_open_loop_counts_latency_by_arrival_and_unfinished_as_lower_bound() -> None:
    samples = [
        _ok(1.0, 1.2),
        _ok(2.5, 4.0),  # arrived in the window, finished after it: in the latencies
        Sample(2.8, 2.8, 5.0, UNFINISHED),  # waited 2.2 s and counting
        _ok(0.5, 1.5),  # arrived in the warm-up, finished in the window: throughput only
    ]
    level = summarize_level(samples, (1.0, 3.0), offered_per_s=2.0)
    assert level.mode == "open"
    assert level.images_ok == 2 and level.images_per_s == 1.0
    assert level.latency_ms["max"] == 2200.0
    assert level.latency_is_lower_bound
    assert level.errors_other == 1
    assert level.status_counts == {"200": 2, UNFINISHED: 1}
    assert level.load == "2.00/s"
    # Three latencies (200, 1500, 2200 ms) bound a p99 only from below: the chance that two of
    # them lie above the true p99 is 0.0003, that all three lie below it 0.97.
    assert (level.latency_samples, level.p99_interval_ms) == (3, (1500.0, None))


def test_a_level_of_enough_answers_bounds_its_p99() -> None:
    # 400 answers, 1..400 ms: the true p99 lies between two of them with 95% confidence.
    samples = [_ok(1.0 + i / 1000, 1.0 + i / 1000 + (i + 1) / 1000) for i in range(400)]
    level = summarize_level(samples, (1.0, 3.0), concurrency=4)
    low, high = level.p99_interval_ms
    assert level.latency_samples == 400
    assert low is not None and high is not None
    assert low <= level.latency_ms["p99"] <= high
    assert (low, high) == pytest.approx((392.0, 400.0))


def test_refused_listings_are_shed_not_errors_nor_latencies() -> None:
    samples = [
        _ok(1.0, 1.2),
        Sample(1.1, 1.1, 1.11, "429", retry_after_s=1.0),
        Sample(1.3, 1.3, 1.31, "429", retry_after_s=1.0),
        Sample(1.5, 1.5, 1.6, "400"),
    ]
    level = summarize_level(samples, (1.0, 3.0), concurrency=2)
    assert (level.refused, level.refused_share) == (2, 0.5)
    assert level.errors_other == 1 and level.errors_5xx == 0
    assert level.latency_ms["max"] == 200.0  # the fast 429s are not latencies


def test_refused_backoff_doubles_with_jitter_and_a_cap() -> None:
    rng = random.Random(0)
    waits = [refused_backoff_s(1.0, refusals, rng) for refusals in (1, 2, 3, 4, 5, 6)]
    bases = [1.0, 2.0, 4.0, MAX_REFUSED_BACKOFF_S, MAX_REFUSED_BACKOFF_S, MAX_REFUSED_BACKOFF_S]
    for wait, base in zip(waits, bases, strict=True):
        assert 0.5 * base <= wait <= 1.5 * base
    assert len(set(waits)) == len(waits)  # jittered
