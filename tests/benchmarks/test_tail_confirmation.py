"""The p99 targets' loads measured again: how long, when not at all, and which window the
targets read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.render import _confirmation_lines
from benchmarks.run import graph_plans, parse_args
from benchmarks.sweep import TailConfirmation
from benchmarks.targets import TAIL_CLOSED, TAIL_OPEN, confirmed, headline


def _level(mode: str, images_per_s: float, p99: float, answers: int, window_s: float,
           interval: tuple[float | None, float | None], *, concurrency: int | None = None,
           rate: float | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode, "concurrency": concurrency, "offered_per_s": rate,
        "images_per_s": images_per_s, "listings_per_s": images_per_s, "window_s": window_s,
        "latency_ms": {"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99, "mean": p99 / 2},
        "latency_is_lower_bound": False, "errors_5xx": 0, "errors_other": 0, "refused": 0,
        "extra": {}, "batch_sizes": {}, "peak_rss_mib": 100.0, "peak_pss_mib": 80.0,
        "service_cpu_ms_per_image": 400.0, "latency_samples": answers,
        "p99_interval_ms": interval, **extra,
    }


@pytest.mark.parametrize(
    ("answers", "window_s", "seconds"),
    [
        pytest.param(80, 20.0, 120.0, id="four-a-second-needs-100-s-and-a-fifth"),
        pytest.param(20, 20.0, 150.0, id="capped"),
        pytest.param(0, 8.0, 150.0, id="no-answer-at-all-gets-the-cap"),
        pytest.param(400, 90.0, None, id="enough-already"),
    ],
)
def test_confirmation_window(answers: int, window_s: float, seconds: float | None) -> None:
    plan = TailConfirmation(answers=400, max_seconds=150.0)
    level = _level("open", 4.0, 900.0, answers, window_s, (800.0, None), rate=5.0)
    assert plan.window_s(level) == seconds


def test_the_full_graph_confirms_its_tails_by_default_and_quick_does_not(tmp_path: Path) -> None:
    plans = {plan.name: plan for plan in graph_plans(parse_args([]), tmp_path)}
    assert plans["full"].confirm == TailConfirmation(answers=400, max_seconds=150.0)
    assert plans["technical"].confirm is None  # it has no p99 target
    for argv in (["--quick"], ["--confirm-answers", "0"]):
        assert all(plan.confirm is None for plan in graph_plans(parse_args(argv), tmp_path))
    with pytest.raises(SystemExit):
        parse_args(["--confirm-max-seconds", "0"])


CLOSED = [_level("closed", 4.0, 400.0, 32, 8.0, (350.0, None), concurrency=1),
          _level("closed", 4.5, 800.0, 36, 8.0, (700.0, None), concurrency=4)]
OPEN = [_level("open", 3.0, 700.0, 60, 20.0, (600.0, None), rate=3.6),
        _level("open", 3.9, 980.0, 80, 20.0, (850.0, None), rate=5.4)]
# The loads the targets are read at (c=4, 5.40/s), measured again for longer.
AGAIN = [_level("closed", 4.4, 950.0, 420, 95.0, (900.0, 990.0), concurrency=4,
                confirms="c=4"),
         _level("open", 3.8, 1150.0, 410, 108.0, (1040.0, 1300.0), rate=5.4,
                confirms="5.40/s")]


def test_the_tail_targets_read_the_longer_windows() -> None:
    head = headline("full", {"images_per_s": 5.0, "cpu_ms_per_image": 300.0}, CLOSED, OPEN,
                    AGAIN)
    checks = {check["target"]: check for check in head["targets"]}
    closed, opened = checks[TAIL_CLOSED.name], checks[TAIL_OPEN.name]
    # The sweep's 36 answers said 800 ms with no upper bound; 420 answers settle it under 1 s.
    assert (closed["value"], closed["passed"]) == (950.0, True)
    assert closed["where"] == ("c=4 measured again for 95 s; p99 95% interval 900-990 ms from "
                               "420 answers, settled: under the limit")
    # The sweep's 980 ms would have passed; 410 answers show the p99 is over 1 s.
    assert (opened["value"], opened["passed"]) == (1150.0, False)
    assert opened["where"].endswith("from 410 answers, settled: over the limit")
    assert head["tail_near_peak_open"]["confirmation"] is True
    # 3.9 of the peak 4.5 in the sweep's window, 3.8 in the longer one: still >= 80%.
    assert "of the peak there" not in opened["where"]


def test_a_confirmation_below_80_percent_of_the_peak_says_so() -> None:
    slower = [AGAIN[0], {**AGAIN[1], "images_per_s": 3.2}]  # 71% of the 4.5 peak
    head = headline("full", {"images_per_s": 5.0, "cpu_ms_per_image": 300.0}, CLOSED, OPEN,
                    slower)
    opened = next(c for c in head["targets"] if c["target"] == TAIL_OPEN.name)
    assert opened["where"].startswith("5.40/s offered measured again for 108 s, at 71% of the "
                                      "peak there;")


def test_without_confirmations_the_targets_read_the_sweep() -> None:
    head = headline("full", {"images_per_s": 5.0, "cpu_ms_per_image": 300.0}, CLOSED, OPEN)
    assert head["tail_near_peak_open"]["p99_ms"] == 980.0
    assert head["tail_near_peak_open"]["confirmation"] is False


def test_a_confirmation_replaces_only_its_own_load() -> None:
    assert confirmed(CLOSED[0], AGAIN) is CLOSED[0]
    assert confirmed(CLOSED[1], AGAIN) is AGAIN[0]
    assert confirmed(OPEN[1], AGAIN) is AGAIN[1]
    assert confirmed(None, AGAIN) is None


def test_the_report_lists_the_confirmation_windows() -> None:
    lines = _confirmation_lines({"tail_confirmations": AGAIN})
    assert lines[2].split()[:3] == ["c=4", "95", "420"]
    assert "900-990" in lines[2] and "1040-1300" in lines[3]
