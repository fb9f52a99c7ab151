"""The targets: PASS/MISS with margins, and which level each one is checked on."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.targets import (
    BATCHING,
    EFFICIENCY,
    FULL_EFFICIENCY,
    FULL_P50_AT_C1,
    LOW_LOAD_SHED,
    P50_AT_C1,
    TAIL_OPEN,
    devset_targets,
    headline,
    highest_load_near_peak,
    littles_law_ms,
    tail_where,
)


@pytest.mark.parametrize(
    ("target", "value", "passed", "margin"),
    [
        pytest.param(P50_AT_C1, 80.0, True, 20.0, id="p50-under"),
        pytest.param(P50_AT_C1, 100.0, True, 0.0, id="p50-at-limit"),
        pytest.param(P50_AT_C1, 221.0, False, -121.0, id="p50-over"),
        pytest.param(EFFICIENCY, 0.66, False, -0.09, id="efficiency-short"),
        pytest.param(TAIL_OPEN, 1000.0, False, 0.0, id="p99-strictly-below"),
        pytest.param(BATCHING, 1.0, False, 0.0, id="batch-strictly-above"),
        pytest.param(BATCHING, 2.5, True, 1.5, id="batch-above"),
    ],
)
def test_target_check(target: Any, value: float, passed: bool, margin: float) -> None:
    checked = target.check(value)
    assert checked["passed"] is passed
    assert checked["margin"] == pytest.approx(margin)


def test_target_without_value_misses() -> None:
    assert P50_AT_C1.check(None)["passed"] is False
    assert TAIL_OPEN.comparison == "<" and P50_AT_C1.comparison == "<="


def _level(concurrency: int | None, images_per_s: float, p99: float, *, rate: float | None = None,
           batch_mean: float | None = None, refused: int = 0) -> dict[str, Any]:
    sizes = ({"extractor": {"mean": batch_mean}, "scorer": {"mean": batch_mean + 1}}
             if batch_mean is not None else {})
    return {
        "mode": "closed" if rate is None else "open", "concurrency": concurrency,
        "offered_per_s": rate, "images_per_s": images_per_s, "listings_per_s": images_per_s,
        "latency_ms": {"p50": p99 / 2, "p99": p99, "mean": p99 / 2},
        "latency_is_lower_bound": False, "errors_5xx": 0, "errors_other": 0,
        "extra": {}, "batch_sizes": sizes, "peak_rss_mib": 100.0, "peak_pss_mib": 80.0,
        "service_cpu_ms_per_image": 400.0, "refused": refused,
    }


CLOSED = [_level(1, 4.0, 300.0, batch_mean=1.0), _level(4, 5.4, 1150.0, batch_mean=1.5),
          _level(16, 5.5, 4800.0, batch_mean=3.2), _level(64, 5.0, 14500.0, batch_mean=6.0)]
OPEN = [_level(None, 2.7, 400.0, rate=2.75), _level(None, 4.3, 800.0, rate=4.4),
        _level(None, 4.1, 9000.0, rate=4.95)]


def test_highest_load_near_peak_picks_the_most_loaded_qualifying_level() -> None:
    chosen = highest_load_near_peak(CLOSED, 5.5, lambda level: level["concurrency"])
    assert chosen is not None and chosen["concurrency"] == 64  # 5.0 >= 0.8 * 5.5
    assert highest_load_near_peak(CLOSED, None, lambda level: level["concurrency"]) is None


def test_littles_law() -> None:
    assert littles_law_ms(CLOSED[3]) == pytest.approx(12800.0)
    assert littles_law_ms(OPEN[0]) is None


def test_headline_full_graph() -> None:
    inprocess = {"images_per_s": 8.0, "cpu_ms_per_image": 240.0}
    head = headline("full", inprocess, CLOSED, OPEN)
    assert head["peak_at_concurrency"] == 16
    assert head["serving_efficiency"] == pytest.approx(0.688)
    checks = {check["target"]: check for check in head["targets"]}
    assert len(checks) == 7
    assert P50_AT_C1.name not in checks  # the backbone's 100 ms: the full graph has issue 11's
    assert head["p50_ms_at_concurrency_1"] == 150.0
    assert (checks[FULL_P50_AT_C1.name]["passed"], checks[FULL_P50_AT_C1.name]["margin"]) == (
        True, 50.0)
    assert checks[FULL_EFFICIENCY.name]["passed"] is False  # 5.5 / 8.0 < 0.85
    assert EFFICIENCY.name not in checks
    assert (checks[LOW_LOAD_SHED.name]["where"], checks[LOW_LOAD_SHED.name]["passed"]) == (
        "c=1", True)
    tail_closed = checks["p99 at the highest load with >= 80% of peak throughput, closed loop"]
    assert (tail_closed["where"], tail_closed["passed"]) == ("c=64", False)
    assert head["tail_near_peak_closed_lowest"]["load"] == "c=4"
    # 4.95/s achieved only 4.1 (75% of 5.5); 4.4/s achieved 4.3 (78%): no rate qualifies.
    assert head["tail_near_peak_open"] is None
    assert checks[TAIL_OPEN.name]["passed"] is False
    # The smaller stage mean at the most loaded level near the peak (c=64), not at the peak.
    assert checks[BATCHING.name]["value"] == 6.0
    assert checks[BATCHING.name]["passed"] is True


def test_headline_full_graph_misses_on_a_listing_shed_at_low_concurrency() -> None:
    levels = [_level(1, 4.0, 300.0), _level(2, 5.0, 500.0, refused=1), _level(4, 5.4, 900.0,
                                                                           refused=30)]
    head = headline("full", {"images_per_s": 6.0, "cpu_ms_per_image": 240.0}, levels)
    shed = next(check for check in head["targets"] if check["target"] == LOW_LOAD_SHED.name)
    # c=4's refusals are admission doing its job near the peak; c=2's is a refused second client.
    assert (shed["value"], shed["where"], shed["passed"]) == (1.0, "c=1,c=2", False)


def test_headline_open_loop_target_on_highest_qualifying_rate() -> None:
    open_levels = [*OPEN[:2], _level(None, 4.6, 950.0, rate=4.95)]
    head = headline("full", {"images_per_s": 8.0, "cpu_ms_per_image": 240.0}, CLOSED,
                    open_levels)
    check = next(c for c in head["targets"] if c["target"] == TAIL_OPEN.name)
    assert check["where"] == "4.95/s offered"
    assert (check["value"], check["passed"]) == (950.0, True)


def _with_interval(level: dict[str, Any], answers: int, low: float | None,
                   high: float | None) -> dict[str, Any]:
    return {**level, "latency_samples": answers, "p99_interval_ms": [low, high]}


def test_an_open_loop_p99_from_a_short_window_is_shown_as_not_settled() -> None:
    # 77 answers: the p99 is about their maximum, and no upper bound exists at 95%.
    open_levels = [*OPEN[:2], _with_interval(_level(None, 4.6, 950.0, rate=4.95), 77, 870.0,
                                             None)]
    head = headline("full", {"images_per_s": 8.0, "cpu_ms_per_image": 240.0}, CLOSED,
                    open_levels)
    check = next(c for c in head["targets"] if c["target"] == TAIL_OPEN.name)
    assert check["passed"] is True  # the verdict stays the point estimate's
    assert check["where"] == ("4.95/s offered; p99 95% interval 870-unbounded ms from 77 "
                              "answers, not settled by this sample (an upper bound takes >= "
                              "368 answers)")
    assert head["tail_near_peak_open"]["p99_interval_ms"] == [870.0, None]


@pytest.mark.parametrize(
    ("low", "high", "reading"),
    [
        pytest.param(700.0, 940.0, "settled: under the limit", id="under"),
        pytest.param(1010.0, 1400.0, "settled: over the limit", id="over"),
        pytest.param(900.0, 1100.0, "not settled by this sample", id="straddles"),
    ],
)
def test_tail_where_reads_the_interval_against_the_limit(low: float, high: float,
                                                         reading: str) -> None:
    point = {"load": "c=64", "p99_interval_ms": [low, high], "answers": 500}
    assert tail_where(point, 1000.0, "no level").endswith(f"from 500 answers, {reading}")


def test_tail_where_of_a_level_recorded_without_an_interval() -> None:
    assert tail_where({"load": "c=64"}, 1000.0, "no level") == "c=64"
    assert tail_where(None, 1000.0, "no level") == "no level"


def test_headline_technical_graph_has_the_backbone_targets_only() -> None:
    levels = [_level(1, 30.0, 60.0), _level(4, 40.0, 150.0)]
    head = headline("technical", {"images_per_s": 45.0, "cpu_ms_per_image": 40.0}, levels)
    assert [check["target"] for check in head["targets"]] == [
        P50_AT_C1.name, "5xx responses, all levels", EFFICIENCY.name]
    assert all(check["passed"] for check in head["targets"])


@pytest.mark.parametrize(
    ("concurrency", "throughput", "expected"),
    [(1, 5.0, 2.0), (64, 6.0, 10.7), (64, 2.0, 15.0), (4, 0.0, 2.0), (64, 48.0, 2.0)],
    ids=["short-queue", "queue-fills", "capped", "no-throughput-yet", "fast-graph"],
)
def test_level_warmup_fills_the_queue(concurrency: int, throughput: float,
                                      expected: float) -> None:
    from benchmarks.sweep import level_warmup_s

    assert level_warmup_s(concurrency, 2.0, throughput) == expected


def test_devset_targets_check_macro_f1_person_and_selection() -> None:
    figures = {
        "images": 282, "macro_f1": 0.91,
        "labels": {"person": {"recall": 0.89, "precision": 0.95}},
        "selection": {"groups": 57, "hits": 52, "hit_rate": 52 / 57},
    }
    checks = {check["target"]: check for check in devset_targets(figures)}
    assert [check["passed"] for check in checks.values()] == [True, False, True, True]
    assert checks["person recall, dev set"]["margin"] == pytest.approx(-0.01)
    assert checks["main image compliant, dev-set groups that have one"]["where"] == \
        "52 of 57 groups"
    figures["labels"]["person"]["precision"] = None  # nobody predicted: precision undefined
    assert not devset_targets(figures)[2]["passed"]
