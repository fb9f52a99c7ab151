"""A per-second timeline of a run under a changing load: what the cluster looked like (nodes per
type, replicas per deployment, polled once a second) beside what the clients saw (requests binned
by the second they finished in). Pure arithmetic, no I/O, except the plot."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.samples import REFUSED, Sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSnapshot:
    """One poll of the cluster, `t` seconds after the traffic's origin."""

    t: float
    nodes: dict[str, int]  # node type -> running nodes (idle ones included)
    replicas: dict[str, int]  # deployment -> RUNNING replicas
    pending_launches: int = 0  # nodes asked of the provider and not up yet
    # deployment -> the replicas Serve's autoscaler wants: its decision, before the replicas
    # (and the nodes for them) have started
    target_replicas: dict[str, int] = field(default_factory=dict)


def is_failure(status: str) -> bool:
    """A request that failed: a 5xx or no answer at all. A 429 (shed) is an answer."""
    return status.startswith("5") or status.startswith("client:")


def _percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def bin_samples(samples: Sequence[Sample], origin: float, seconds: int) -> list[dict[str, Any]]:
    """Second by second from `origin` (perf_counter time): requests offered (by due time), in
    flight at the start of the second, and, of those that finished in it, images answered ok
    (goodput), p50/p99 of the 200s (from due time), the share shed and the failures."""
    bins: list[dict[str, Any]] = []
    for second in range(seconds):
        start, end = origin + second, origin + second + 1
        finished = [s for s in samples if start <= s.finished < end]
        latencies = [(s.finished - s.due) * 1000 for s in finished if s.status == "200"]
        shed = sum(1 for s in finished if s.status == REFUSED)
        p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
        bins.append({
            "t": second,
            "offered": sum(1 for s in samples if start <= s.due < end),
            "in_flight": sum(1 for s in samples if s.started <= start < s.finished),
            "goodput": sum(s.answer.images_ok for s in finished),
            "p50_ms": None if p50 is None else round(p50, 1),
            "p99_ms": None if p99 is None else round(p99, 1),
            "shed": round(shed / len(finished), 3) if finished else 0.0,
            "failed": sum(1 for s in finished if is_failure(s.status)),
        })
    return bins


def merge(bins: Sequence[dict[str, Any]], snapshots: Sequence[ClusterSnapshot]
          ) -> list[dict[str, Any]]:
    """Each second's bin with the last cluster snapshot taken at or before its end."""
    ordered = sorted(snapshots, key=lambda snapshot: snapshot.t)
    merged = []
    for entry in bins:
        taken = [s for s in ordered if s.t <= entry["t"] + 1]
        last = taken[-1] if taken else None
        merged.append({
            **entry,
            "nodes": dict(last.nodes) if last else {},
            "replicas": dict(last.replicas) if last else {},
            "target_replicas": dict(last.target_replicas) if last else {},
            "pending_launches": last.pending_launches if last else 0,
        })
    return merged


def changes(samples: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Every second at which the count of some type under `key` (nodes, replicas) changed:
    `{"t", "name", "from", "to"}`."""
    events = []
    previous: dict[str, int] = {}
    for index, sample in enumerate(samples):
        current = sample[key]
        for name in sorted(set(previous) | set(current)):
            before, after = previous.get(name, 0), current.get(name, 0)
            if index and before != after:
                events.append({"t": sample["t"], "name": name, "from": before, "to": after})
        previous = current
    return events


def status_counts(samples: Sequence[Sample]) -> dict[str, int]:
    return dict(sorted(Counter(s.status for s in samples).items()))


def plot_timeline(samples: Sequence[dict[str, Any]], phases: Sequence[tuple[str, float, float]],
                  title: str, path: Path) -> None:
    """Four panels over time: nodes per type, replicas per deployment, offered and goodput, p99
    and shed share; the load phases shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    times = [sample["t"] for sample in samples]
    figure, axes = plt.subplots(4, 1, figsize=(9, 10), dpi=110, sharex=True)
    panels = (("nodes", "worker nodes"), ("replicas", "replicas (dotted: target)"))
    for axis, (key, label) in zip(axes[:2], panels, strict=False):
        names = sorted({name for sample in samples for name in sample[key]})
        for index, name in enumerate(names):
            axis.step(times, [sample[key].get(name, 0) for sample in samples], where="post",
                      label=name, color=f"C{index}")
            if key == "replicas":  # Serve's target beside the replicas running
                axis.step(times, [sample["target_replicas"].get(name, 0) for sample in samples],
                          where="post", color=f"C{index}", linestyle=":", linewidth=0.9)
        axis.set_ylabel(label)
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(fontsize=7, loc="upper right")
    axes[2].plot(times, [s["offered"] for s in samples], color="grey", linewidth=0.8,
                 label="offered listings/s")
    axes[2].plot(times, [s["goodput"] for s in samples], color="C2", label="goodput images/s")
    axes[2].plot(times, [s["in_flight"] for s in samples], color="C1", linewidth=0.8,
                 label="in flight")
    axes[2].legend(fontsize=7, loc="upper right")
    axes[3].plot(times, [s["p99_ms"] if s["p99_ms"] is not None else math.nan for s in samples],
                 color="C3", label="p99 ms")
    axes[3].set_ylabel("p99 (ms)")
    shed_axis = axes[3].twinx()
    shed_axis.plot(times, [s["shed"] for s in samples], color="C4", linewidth=0.8,
                   label="shed share")
    shed_axis.set_ylim(0, 1)
    shed_axis.set_ylabel("shed share")
    failures = [s["t"] for s in samples if s["failed"]]
    if failures:
        axes[3].scatter(failures, [0] * len(failures), color="red", marker="x", label="failed")
    axes[3].legend(fontsize=7, loc="upper left")
    shed_axis.legend(fontsize=7, loc="upper right")
    for axis in axes:
        for name, start, end in phases:
            if name != "quiet":
                axis.axvspan(start, end, color="orange", alpha=0.08)
        axis.grid(True, alpha=0.3)
    axes[-1].set_xlabel("seconds")
    axes[0].set_title(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    logger.info("wrote %s", path)
