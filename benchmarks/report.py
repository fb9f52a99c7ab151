"""Machine facts, rates derived from a level's counters, the JSON and the plot. The text report
is `benchmarks.render`; the targets are `benchmarks.targets`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

GIB = 2**30


def machine_info(repo: Path) -> dict[str, Any]:
    import ray

    from models.runtime.cpu_features import cpu_features

    return {
        "cpu_model": _cpu_model(),
        # The ISA flags that decide the runtimes' speed and choice (AVX2, AVX-512, VNNI, BF16, AMX).
        "cpu_flags": cpu_features().describe().split("; ", 1)[-1],
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


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    logger.info("wrote %s", path)


def measure_and_report(measure: Callable[[], dict[str, Any]],
                       render: Callable[[dict[str, Any]], str], json_path: Path | None) -> int:
    """The end of a stand-alone benchmark's `main()`: progress logged, the figures measured, the
    report printed, and the JSON written where `--json` asked; the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = measure()
    print(render(result))
    if json_path is not None:
        write_json(result, json_path)
    return 0


def plot_latency_vs_throughput(graph: dict[str, Any], machine: dict[str, Any],
                                path: Path) -> None:
    """p50/p95/p99 against throughput for one graph: closed-loop levels as solid lines, open-loop
    rates as dotted ones, the in-process limit as a dashed vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(name, [level for level in graph[key] if level["latency_ms"]["p50"] is not None])
              for name, key in (("closed", "levels"), ("open", "open_loop"))]
    if not any(levels for _, levels in series):
        logger.warning("no level with successful requests: no plot")
        return
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, levels in series:
        if not levels:
            continue
        # In order of load (concurrency, offered rate): a closed loop's throughput falls again
        # past saturation, and the line shows that path.
        levels = sorted(levels, key=lambda level: level["concurrency"] or level["offered_per_s"])
        throughput = [level["images_per_s"] for level in levels]
        for key, marker, color in (("p50", "o", "C0"), ("p95", "s", "C1"), ("p99", "^", "C2")):
            axes.plot(throughput, [level["latency_ms"][key] for level in levels], marker=marker,
                      color=color, linestyle="-" if name == "closed" else ":",
                      markerfacecolor=color if name == "closed" else "white",
                      label=f"{key} {name} loop")
        for level, x in zip(levels, throughput, strict=True):
            label = (f"c={level['concurrency']}" if name == "closed"
                     else f"{level['offered_per_s']:.1f}/s")
            axes.annotate(label, (x, level["latency_ms"]["p50"]), textcoords="offset points",
                          xytext=(4, -12), fontsize=7)
    inproc = graph["inprocess"]["images_per_s"]
    axes.axvline(inproc, color="grey", linestyle="--", linewidth=1)
    axes.annotate(f"in-process {inproc:.1f}/s", (inproc, axes.get_ylim()[1]),
                  textcoords="offset points", xytext=(-4, -12), ha="right", fontsize=8,
                  color="grey")
    axes.set_yscale("log")
    axes.set_xlabel("throughput (images/s, one-image listings)")
    axes.set_ylabel("latency (ms)")
    axes.set_title(f"curator /v1/assess, {graph['graph']} graph, {machine['logical_cores']} "
                   f"cores, {machine['date'][:10]}", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    logger.info("wrote %s", path)
