"""One graph's measurements: its in-process limit, then the served graph under the closed-loop
sweep and, where asked, the open-loop rates, each tail target's load measured again until its
p99 can be bounded, and the soak, on one `serve run` that is always stopped."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from benchmarks import report
from benchmarks.arrivals import OfferedRate
from benchmarks.images import BenchImage
from benchmarks.inprocess import run_inprocess
from benchmarks.loadgen import LoadGenerator
from benchmarks.samples import LevelResult
from benchmarks.service import REPO_ROOT, ServeService, application_args
from benchmarks.soak import SoakPlan, run_soak
from benchmarks.targets import Level, headline, highest_load_near_peak
from benchmarks.traffic import Payload

logger = logging.getLogger(__name__)

SERVICE_WARMUP_CONCURRENCY = 2
MAX_LEVEL_WARMUP_S = 15.0  # the longest warm-up a closed-loop level gets


def level_warmup_s(concurrency: int, minimum_s: float, throughput_per_s: float,
                   cap_s: float = MAX_LEVEL_WARMUP_S) -> float:
    """Warm-up of a closed-loop level: long enough for its `concurrency` workers' queue to fill
    at the throughput seen so far (c / X, one mean latency by Little's law), so the window
    measures the steady state rather than the ramp from an empty queue; at least `minimum_s`,
    at most `cap_s`."""
    if throughput_per_s <= 0:
        return minimum_s
    return round(max(minimum_s, min(cap_s, concurrency / throughput_per_s)), 1)


@dataclass(frozen=True)
class GraphPlan:
    name: Literal["full", "technical"]
    config: Path  # the serve config to run (the technical one is a temporary variant)
    described_as: str  # how the report names the config
    open_rates: list[OfferedRate] = field(default_factory=list)
    # After the sweeps: each tail target's load again, long enough to bound its p99.
    confirm: TailConfirmation | None = None
    soak: SoakPlan | None = None  # after the open loop, at a share of the closed-loop peak


@dataclass(frozen=True)
class TailConfirmation:
    """The p99 targets are read at the most loaded closed-loop level and open-loop rate that
    still reach 80% of the peak. A sweep's short windows hold a few dozen answers there, whose
    p99 is about their largest and has no upper bound (benchmarks/stats.quantile_interval); so
    each of those loads runs once more for a window long enough to hold `answers` answers at the
    rate it answered in the sweep (with a fifth more time: a longer window at the same load
    answered 13% slower on the 2-core host), at most `max_seconds`, and the targets read that
    window."""

    answers: int
    max_seconds: float
    margin: float = 1.2  # time factor over what the sweep's answer rate predicts

    def window_s(self, level: Level) -> float | None:
        """Seconds of confirmation `level` needs; None when its own window holds enough."""
        held = level.get("latency_samples") or 0
        if held >= self.answers:
            return None
        per_s = held / level["window_s"] if level["window_s"] > 0 else 0.0
        if per_s <= 0:
            return self.max_seconds
        return round(min(self.max_seconds, self.margin * self.answers / per_s), 1)


def run_graph(plan: GraphPlan, images: list[BenchImage], payloads: list[Payload],
              args: argparse.Namespace) -> dict[str, Any]:
    inprocess = run_inprocess(
        images, application_args(plan.config), warmup=args.inprocess_warmup,
        duration_s=args.inprocess_duration, rounds=args.inprocess_rounds,
        batch=args.inprocess_batch, torch_threads=args.inprocess_torch_threads,
    )
    levels: list[dict[str, Any]] = []
    open_levels: list[dict[str, Any]] = []
    service = ServeService(config=plan.config, port=args.port,
                           log_path=args.out_dir / f"serve_{plan.name}.log",
                           extra_env=args.serve_env)
    try:
        service.start()
        monitor = service.monitor
        assert monitor is not None

        def measured(run: Callable[[], LevelResult]) -> dict[str, Any]:
            monitor.begin_window()
            level = run()
            window = monitor.end_window()
            health = service.ensure_alive(f"the {plan.name} graph at {level.load}")
            # The ingress's admission state after the level (one replica's, when there are more).
            merged = {**level.to_dict(), **asdict(window), "admission": health.get("admission")}
            logger.info("%s %s: %.1f images/s, p50 %s ms, p99 %s ms, statuses %s", plan.name,
                        level.load, level.images_per_s, level.latency_ms["p50"],
                        level.latency_ms["p99"], level.status_counts)
            return {**merged, **report.derive_level(merged)}

        generator = LoadGenerator(service.url, payloads)
        warm = generator.run_level(SERVICE_WARMUP_CONCURRENCY, 0.0, args.service_warmup)
        service.ensure_alive(f"the {plan.name} graph's warm-up")
        logger.info("service warm-up: %s, %.1f images/s", warm.status_counts, warm.images_per_s)
        if warm.images_ok == 0:
            logger.error("no successful request during warm-up; the levels will show why")
        throughput = warm.images_per_s
        for concurrency in args.levels:
            warmup = level_warmup_s(concurrency, args.warmup, throughput)
            level = measured(partial(generator.run_level, concurrency, warmup, args.duration))
            levels.append({**level, "warmup_s": warmup})
            throughput = max(throughput, level["images_per_s"])
        peak = max(level["images_per_s"] for level in levels)
        for index, rate in enumerate(plan.open_rates):
            try:
                per_s = rate.per_s(peak)
            except ValueError as error:
                logger.error("open loop %s skipped: %s", rate, error)
                continue
            level = measured(partial(generator.run_rate, per_s, args.open_warmup,
                                     args.open_duration, seed=index))
            open_levels.append({**level, "rate": str(rate)})
        confirmations: list[dict[str, Any]] = []
        if plan.confirm and levels:
            closed_tail = highest_load_near_peak(levels, peak, lambda level: level["concurrency"])
            seconds = plan.confirm.window_s(closed_tail) if closed_tail else None
            if closed_tail and seconds:
                concurrency = closed_tail["concurrency"]
                level = measured(partial(generator.run_level, concurrency,
                                         level_warmup_s(concurrency, args.warmup, peak), seconds))
                confirmations.append({**level, "confirms": f"c={concurrency}"})
            open_tail = highest_load_near_peak(open_levels, peak,
                                               lambda level: level["offered_per_s"])
            seconds = plan.confirm.window_s(open_tail) if open_tail else None
            if open_tail and seconds:
                level = measured(partial(generator.run_rate, open_tail["offered_per_s"],
                                         args.open_warmup, seconds, seed=len(open_levels)))
                confirmations.append({**level, "rate": open_tail["rate"],
                                      "confirms": f"{open_tail['offered_per_s']:.2f}/s"})
        soak = None
        if plan.soak:
            soak = run_soak(generator, monitor, peak, plan.soak)
            health = service.ensure_alive(f"the {plan.name} graph's soak")
            soak["admission_after"] = health.get("admission")
        service_info = {
            "config": plan.described_as,
            "command": "python -m ray.serve.scripts run --address local <config, port rewritten>",
            "extra_env": args.serve_env,
            "startup_s": service.startup_s,
            "warmup": warm.to_dict(),
            "peak_rss_by_role_mib": monitor.peak_breakdown_mib,
        }
    finally:
        service.stop()
    service_info["leftover_processes"] = service.leftover_processes
    inprocess_figures = inprocess.to_dict()
    return {
        "graph": plan.name,
        "inprocess": inprocess_figures,
        "service": service_info,
        "levels": levels,
        "open_loop": open_levels,
        "tail_confirmations": confirmations,
        "soak": soak,
        "headline": headline(plan.name, inprocess_figures, levels, open_levels, confirmations),
    }


def describe_config(config: Path) -> str:
    return str(config.relative_to(REPO_ROOT) if config.is_relative_to(REPO_ROOT) else config)
