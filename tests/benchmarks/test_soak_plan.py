"""The soak's place in `make bench`: on by default for the full graph, off with --quick."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.run import graph_plans, parse_args
from benchmarks.soak import SoakPlan, render_soak


def test_the_full_graph_soaks_ten_minutes_at_80_percent_by_default(tmp_path: Path) -> None:
    plans = {plan.name: plan for plan in graph_plans(parse_args([]), tmp_path)}
    assert plans["full"].soak == SoakPlan(seconds=600.0, warmup_s=60.0, bucket_s=60.0,
                                          peak_share=0.8)
    assert plans["technical"].soak is None


def test_quick_and_zero_seconds_skip_the_soak(tmp_path: Path) -> None:
    for argv in (["--quick"], ["--soak-seconds", "0"]):
        assert all(plan.soak is None for plan in graph_plans(parse_args(argv), tmp_path))


def test_a_short_soak_is_one_flag(tmp_path: Path) -> None:
    plans = graph_plans(parse_args(["--graph", "full", "--soak-seconds", "60"]), tmp_path)
    assert plans[0].soak is not None and plans[0].soak.seconds == 60.0


@pytest.mark.parametrize("argv", [["--soak-seconds", "-1"], ["--soak-bucket", "0"],
                                  ["--soak-share", "0"], ["--soak-share", "5"]])
def test_bad_soak_settings_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_the_soak_report_prints_the_cpu_and_every_minute() -> None:
    latency = {"p50": 90.0, "p95": 150.0, "p99": 210.0, "mean": 100.0, "max": 300.0}
    bucket = {"from_s": 0.0, "to_s": 60.0, "sent": 120, "ok": 118, "errors_5xx": 0, "shed": 2,
              "shed_share": 2 / 120, "other": 0, "latency_ms": latency}
    soak = {
        "plan": {"seconds": 120.0, "warmup_s": 60.0, "bucket_s": 60.0, "peak_share": 0.8},
        "peak_images_per_s": 2.5, "offered_per_s": 2.0,
        "totals": {**bucket, "sent": 240, "ok": 236, "shed": 4, "5xx_outside_window": 0},
        "per_bucket": [bucket, {**bucket, "from_s": 60.0, "to_s": 120.0}],
        "rss_by_replica": {"Preprocess pid 42": {
            "samples": 25, "start_mib": 500.0, "end_mib": 502.0, "peak_mib": 503.0,
            "growth_mib": 2.0, "growth_pct": 0.4, "slope_mib_per_min": 1.0, "trend_pct": 0.4,
            "flat": True,
            "started_late": False, "at_bucket_end_mib": [501.0, 502.0]}},
        "rss_flat": True,
    }
    text = "\n".join(render_soak(soak, {"cpu_model": "Test CPU", "logical_cores": 2}))
    assert "CPU: Test CPU, 2 logical cores" in text
    assert "5xx 0 (target 0" in text and "shed (429/503) 4 = 1.7%" in text
    assert text.count(" 210") >= 2  # p99 on each minute's row
    assert "Preprocess pid 42" in text and "501 502" in text and "trend +0.4%" in text
    assert "RSS after warm-up: flat" in text
