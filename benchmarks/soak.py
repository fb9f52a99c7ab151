"""The soak (issue 13, part 5): the served full graph under open-loop (Poisson) load at a share
of the closed-loop peak (80% by default) for ten minutes, on the same `serve run` the sweep
measured. It reports 5xx (target 0), the shed share (429 and 503 over all answers), p99 latency
per minute, and each replica's RSS over time, whose growth after the warm-up should be flat.

The requests are the sweep's (`LoadGenerator`, `benchmarks.traffic.open_loop`); the RSS comes
from the service's process-tree sampler (psutil on the replica processes), read here every
`RSS_INTERVAL_S`."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.loadgen import LoadGenerator
from benchmarks.over_time import FLAT_GROWTH_PCT, rss_at_bucket_ends, rss_growth
from benchmarks.procmon import ProcessTreeMonitor

logger = logging.getLogger(__name__)

RSS_INTERVAL_S = 5.0
SOAK_SEED = 1000  # apart from the open-loop levels' seeds (their index)


@dataclass(frozen=True)
class SoakPlan:
    seconds: float  # measured soak, after the warm-up
    warmup_s: float  # load before the measured window: replicas warm up, RSS settles
    bucket_s: float  # figures per bucket of this many seconds (a minute)
    peak_share: float  # of the closed-loop peak, images/s (one image per listing)


class RssRecorder:
    """Every replica's RSS, read from the service's sampler on a daemon thread, as
    `{replica: [(perf_counter, MiB), ...]}`."""

    def __init__(self, monitor: ProcessTreeMonitor, interval_s: float = RSS_INTERVAL_S) -> None:
        self._monitor = monitor
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-rss", daemon=True)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.first_sample_at: float | None = None

    def __enter__(self) -> RssRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._record()  # the state at the end of the run

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._record()
            self._stop.wait(self._interval_s)

    def _record(self) -> None:
        now = time.perf_counter()
        self.first_sample_at = self.first_sample_at or now
        for replica, mib in self._monitor.replica_rss_mib().items():
            self.series.setdefault(replica, []).append((now, mib))


def run_soak(generator: LoadGenerator, monitor: ProcessTreeMonitor, peak_images_per_s: float,
             plan: SoakPlan) -> dict[str, Any]:
    rate = plan.peak_share * peak_images_per_s
    logger.info("soak: %.2f listings/s (%.0f%% of the peak %.2f images/s) for %.0f s after "
                "%.0f s of warm-up", rate, 100 * plan.peak_share, peak_images_per_s,
                plan.seconds, plan.warmup_s)
    with RssRecorder(monitor) as recorder:
        level = generator.run_soak(rate, plan.warmup_s, plan.seconds, plan.bucket_s,
                                   seed=SOAK_SEED)
    extra = level.extra
    window_start, window_end = extra.pop("window_perf_counter")
    buckets = extra.pop("over_time")
    totals = extra.pop("totals")
    assert recorder.first_sample_at is not None
    replicas = {}
    for replica, series in sorted(recorder.series.items()):
        replicas[replica] = {
            **rss_growth(series, window_start, window_end, recorder.first_sample_at),
            "at_bucket_end_mib": rss_at_bucket_ends(series, window_start,
                                                    [bucket["to_s"] for bucket in buckets]),
        }
    steady = [figures for figures in replicas.values()
              if figures.get("samples") and not figures["started_late"]]
    return {
        "plan": {"seconds": plan.seconds, "warmup_s": plan.warmup_s, "bucket_s": plan.bucket_s,
                 "peak_share": plan.peak_share, "rss_interval_s": RSS_INTERVAL_S},
        "peak_images_per_s": peak_images_per_s,
        "offered_per_s": round(rate, 3),
        "totals": {**totals, "5xx_outside_window": extra.get("5xx_outside_window", 0)},
        "per_bucket": buckets,
        "rss_by_replica": replicas,
        "rss_flat": bool(steady) and all(figures["flat"] for figures in steady),
        "level": level.to_dict(),
    }


def render_soak(soak: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    plan, totals = soak["plan"], soak["totals"]
    lines = [
        f"=== SOAK (full graph): {plan['seconds']:.0f} s at {100 * plan['peak_share']:.0f}% of "
        f"the closed-loop peak ({soak['offered_per_s']:.2f} listings/s of "
        f"{soak['peak_images_per_s']:.2f}), after {plan['warmup_s']:.0f} s of warm-up ===",
        f"  CPU: {machine['cpu_model']}, {machine['logical_cores']} logical cores",
        f"  answers {totals['sent']}: 200 {totals['ok']}, 5xx {totals['errors_5xx']} "
        f"(target 0; after the window {totals['5xx_outside_window']}), shed (429/503) "
        f"{totals['shed']} = {100 * totals['shed_share']:.1f}%, other {totals['other']}; "
        f"p99 {_ms(totals['latency_ms']['p99'])} ms",
        f"  {'seconds':>9} {'sent':>5} {'200':>5} {'5xx':>4} {'shed':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7}",
    ]
    for bucket in soak["per_bucket"]:
        lines.append(
            f"  {bucket['from_s']:4.0f}-{bucket['to_s']:<4.0f} {bucket['sent']:5} "
            f"{bucket['ok']:5} {bucket['errors_5xx']:4} {100 * bucket['shed_share']:5.1f}% "
            f"{_ms(bucket['latency_ms']['p50']):>7} {_ms(bucket['latency_ms']['p99']):>7}")
    lines.append(f"  RSS per replica, MiB, at the end of each bucket; growth over the window, and "
                 f"its trend (Theil-Sen slope x window / median; flat: <= {FLAT_GROWTH_PCT:g}%)")
    for replica, figures in soak["rss_by_replica"].items():
        if not figures.get("samples"):
            lines.append(f"    {replica:32} gone before the window")
            continue
        series = " ".join("-" if mib is None else f"{mib:.0f}"
                          for mib in figures["at_bucket_end_mib"])
        late = ", started during the soak" if figures["started_late"] else ""
        lines.append(
            f"    {replica:32} {series} | {figures['start_mib']:.0f} -> {figures['end_mib']:.0f}"
            f" ({figures['growth_mib']:+.1f} MiB, {figures['growth_pct']:+.1f}%, "
            f"{figures['slope_mib_per_min']:+.2f} MiB/min, trend "
            f"{figures['trend_pct']:+.1f}%){late}")
    lines.append(f"  RSS after warm-up: {'flat' if soak['rss_flat'] else 'NOT flat'}")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
