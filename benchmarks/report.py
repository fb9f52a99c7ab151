"""Turning measurements into the report: machine facts, the targets, the table, JSON and a plot."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

GIB = 2**30


@dataclass(frozen=True)
class Target:
    """One of the issue's targets for this 2-core host."""

    name: str
    limit: float
    higher_is_better: bool
    unit: str

    def check(self, value: float | None) -> dict[str, Any]:
        if value is None:
            return {"target": self.name, "value": None, "limit": self.limit, "unit": self.unit,
                    "passed": False, "margin": None}
        margin = value - self.limit if self.higher_is_better else self.limit - value
        return {"target": self.name, "value": value, "limit": self.limit, "unit": self.unit,
                "passed": margin >= 0, "margin": round(margin, 3)}


P50_AT_C1 = Target("p50 latency at concurrency 1, one-image listing", 100.0, False, "ms")
NO_5XX = Target("5xx responses, all levels", 0, False, "responses")
EFFICIENCY = Target("serving efficiency", 0.75, True, "ratio")


def machine_info(repo: Path) -> dict[str, Any]:
    import ray

    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "ray": ray.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git(repo, "rev-parse", "HEAD"),
        "git_dirty": bool(_git(repo, "status", "--porcelain")),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def headline(inprocess: dict[str, Any], levels: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the issue asks for, and each target checked with its margin."""
    by_concurrency = {level["concurrency"]: level for level in levels}
    p50_c1 = by_concurrency[1]["latency_ms"]["p50"] if 1 in by_concurrency else None
    total_5xx = sum(
        level["errors_5xx"] + level["extra"].get("5xx_outside_window", 0) for level in levels
    )
    peak = max(levels, key=lambda level: level["images_per_s"]) if levels else None
    peak_images_per_s = peak["images_per_s"] if peak else None
    efficiency = (
        round(peak_images_per_s / inprocess["images_per_s"], 3)
        if peak_images_per_s is not None and inprocess["images_per_s"] > 0 else None
    )
    # Informational: serving cost per image in CPU, independent of how many cores each side used.
    peak_cpu_ms = peak.get("service_cpu_ms_per_image") if peak else None
    cpu_efficiency = (round(inprocess["cpu_ms_per_image"] / peak_cpu_ms, 3)
                      if peak_cpu_ms else None)
    return {
        "p50_ms_at_concurrency_1": p50_c1,
        "no_5xx": total_5xx == 0,
        "total_5xx": total_5xx,
        "peak_service_images_per_s": peak_images_per_s,
        "peak_at_concurrency": peak["concurrency"] if peak else None,
        "inprocess_images_per_s": inprocess["images_per_s"],
        "serving_efficiency": efficiency,
        "cpu_efficiency_at_peak": cpu_efficiency,
        "peak_service_rss_mib": max((level["peak_rss_mib"] for level in levels), default=None),
        "peak_service_pss_mib": max((level["peak_pss_mib"] for level in levels), default=None),
        "targets": [
            P50_AT_C1.check(p50_c1),
            NO_5XX.check(float(total_5xx)),
            EFFICIENCY.check(efficiency),
        ],
    }


def derive_level(level: dict[str, Any]) -> dict[str, Any]:
    """Rates from one level's counters: cores busy, and CPU per image (steady state assumed:
    the service's CPU over the whole level divided by the window's throughput)."""
    wall_s = level["wall_s"] or 1.0
    service_cores = sum(level["cpu_s_by_role"].values()) / wall_s
    per_image = 1000.0 / level["images_per_s"] / wall_s if level["images_per_s"] else None
    return {
        "client_cores": round(level["client_cpu_s"] / level["run_s"], 3) if level["run_s"] else 0,
        "service_cores": round(service_cores, 3),
        "service_cpu_ms_per_image": round(service_cores * 1000 / level["images_per_s"], 2)
        if level["images_per_s"] else None,
        "service_cpu_ms_per_image_by_role": {
            role: round(cpu_s * per_image, 2) for role, cpu_s in level["cpu_s_by_role"].items()
        } if per_image else {},
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_text(result: dict[str, Any]) -> str:
    machine, inproc, head = result["machine"], result["inprocess"], result["headline"]
    lines = [
        f"curator benchmark - {machine['date']}  commit {machine['git_commit'] or '(none)'}"
        f"{' (dirty)' if machine['git_dirty'] else ''}",
        f"host: {machine['cpu_model']}, {machine['logical_cores']} cores, "
        f"{machine['ram_gib']} GiB; python {machine['python']}, ray {machine['ray']}; "
        f"load avg at start {machine['load_average_at_start']}",
        "",
        f"In-process limit (one process, no Ray/HTTP): {inproc['images_per_s']:.1f} images/s "
        f"(fastest of rounds {inproc['round_images_per_s']}; median "
        f"{inproc['median_images_per_s']:.1f}; other load on the host during the rounds "
        f"{inproc['round_other_cores']} cores) over {inproc['listings']} one-image "
        f"listings; per listing p50 {_fmt(inproc['listing_ms']['p50'])} ms, "
        f"p95 {_fmt(inproc['listing_ms']['p95'])} ms; {inproc['cores_busy']:.2f} cores busy, "
        f"{inproc['cpu_ms_per_image']:.1f} CPU ms/image",
        f"  measured: {inproc['pipeline']}; {inproc['batch']} listing(s) per pass; "
        f"torch threads {inproc['torch_threads']}",
        "  per listing                p50 ms   p95 ms",
    ]
    for stage, summary in inproc["stage_ms"].items():
        lines.append(f"  {stage:26} {_fmt(summary['p50'], 2):>7}  {_fmt(summary['p95'], 2):>7}")
    steps = inproc.get("preprocess_steps_ms") or {}
    if steps:
        lines.append("  preprocess steps (p50 ms): " + ", ".join(
            f"{step} {_fmt(summary['p50'], 1)}" for step, summary in steps.items()))
    service = result["service"]
    lines += [
        "",
        f"Service ({service['config']}, started in {service['startup_s']} s), closed loop, "
        f"{result['settings']['warmup_s']:.0f} s warm-up + {result['settings']['duration_s']:.0f}"
        " s measured per level:",
        "     c  listings/s  images/s   p50 ms   p95 ms   p99 ms  5xx  other  img-err"
        "  RSS MiB  PSS MiB  svc-cores  svc-CPU-ms/img  host-cores  replicas",
    ]
    for level in result["levels"]:
        latency = level["latency_ms"]
        replicas = ",".join(f"{k}={v}" for k, v in sorted(level["replicas"].items()))
        lines.append(
            f"  {level['concurrency']:4d}  {level['listings_per_s']:10.1f}  "
            f"{level['images_per_s']:8.1f}  {_fmt(latency['p50']):>7}  {_fmt(latency['p95']):>7}"
            f"  {_fmt(latency['p99']):>7}  {level['errors_5xx']:3d}  {level['errors_other']:5d}"
            f"  {level['image_errors']:7d}  {level['peak_rss_mib']:7.0f}  "
            f"{level['peak_pss_mib']:7.0f}  {level['service_cores']:9.2f}  "
            f"{_fmt(level['service_cpu_ms_per_image']):>14}  {level['host_busy_cores']:10.2f}"
            f"  {replicas}"
        )
    steal = max((level.get("host_steal_cores", 0.0) for level in result["levels"]), default=0.0)
    lines.append("  (host-cores: every process on the machine, other users' included; "
                 f"most CPU stolen by the hypervisor in a level: {steal:.2f} cores)")
    if head["peak_at_concurrency"] is not None:
        peak_level = next(level for level in result["levels"]
                          if level["concurrency"] == head["peak_at_concurrency"])
        shares = ", ".join(f"{role} {ms:.1f}" for role, ms in
                           list(peak_level["service_cpu_ms_per_image_by_role"].items())[:8])
        lines += ["", f"Service CPU ms per image by process at c={peak_level['concurrency']} "
                      f"(peak throughput): {shares}"]
    breakdown = ", ".join(f"{role} {mib:.0f}" for role, mib in
                          list(result["service"]["peak_rss_by_role_mib"].items())[:8])
    lines += [f"RSS MiB by process at the peak sample: {breakdown}", "", "Headline:"]
    lines += [
        f"  p50 at concurrency 1 (one-image listing): {_fmt(head['p50_ms_at_concurrency_1'])} ms",
        f"  no 5xx: {'yes' if head['no_5xx'] else 'NO'} ({head['total_5xx']} in all)",
        f"  serving efficiency: {_fmt(head['serving_efficiency'], 3)} "
        f"(peak {_fmt(head['peak_service_images_per_s'])} images/s at "
        f"c={head['peak_at_concurrency']} / in-process {_fmt(head['inprocess_images_per_s'])}); "
        f"per CPU second: {_fmt(head['cpu_efficiency_at_peak'], 3)} (in-process CPU ms/image "
        "/ service CPU ms/image at the peak)",
        f"  peak service memory: {_fmt(head['peak_service_rss_mib'], 0)} MiB RSS summed "
        f"({_fmt(head['peak_service_pss_mib'], 0)} MiB PSS)",
        "",
        "Targets (this 2-core host):",
    ]
    for check in head["targets"]:
        verdict = "PASS" if check["passed"] else "MISS"
        comparison = ">=" if check["target"] == EFFICIENCY.name else "<="
        digits = {"ratio": 3, "ms": 1}.get(check["unit"], 0)
        lines.append(
            f"  {verdict}  {check['target']}: {_fmt(check['value'], digits)} {check['unit']} "
            f"(target {comparison} {check['limit']:g}; margin {_fmt(check['margin'], digits)})"
        )
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    logger.info("wrote %s", path)


def plot_latency_vs_throughput(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [level for level in result["levels"] if level["latency_ms"]["p50"] is not None]
    if not levels:
        logger.warning("no level with successful requests: no plot")
        return
    throughput = [level["images_per_s"] for level in levels]
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for key, marker in (("p50", "o"), ("p95", "s"), ("p99", "^")):
        axes.plot(throughput, [level["latency_ms"][key] for level in levels],
                  marker=marker, label=key)
    for level, x in zip(levels, throughput, strict=True):
        axes.annotate(f"c={level['concurrency']}", (x, level["latency_ms"]["p50"]),
                      textcoords="offset points", xytext=(4, -12), fontsize=8)
    inproc = result["inprocess"]["images_per_s"]
    axes.axvline(inproc, color="grey", linestyle="--", linewidth=1)
    axes.annotate(f"in-process {inproc:.1f}/s", (inproc, axes.get_ylim()[1]),
                  textcoords="offset points", xytext=(-4, -12), ha="right", fontsize=8,
                  color="grey")
    axes.set_yscale("log")
    axes.set_xlabel("throughput (images/s, one-image listings)")
    axes.set_ylabel("latency (ms)")
    machine = result["machine"]
    axes.set_title(f"curator /v1/assess, {machine['logical_cores']} cores, "
                   f"{machine['date'][:10]}", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    logger.info("wrote %s", path)
