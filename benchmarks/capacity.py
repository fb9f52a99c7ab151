"""The capacity model of docs/capacity.md: machines and autoscaling settings for N images a day.

    python -m benchmarks.capacity                  # the tables, from docs/capacity-bench.json
    python -m benchmarks.capacity --json           # the same figures as JSON
    python -m benchmarks.capacity --write-doc      # rewrite the generated part of docs/capacity.md
    make capacity

Inputs, and where each comes from:

- CPU ms per image of every serving role, **measured** by `make bench` (latest.json, the full
  graph's fastest closed-loop level that shed almost nothing, `planning_level`:
  `service_cpu_ms_per_image_by_role`), and the detectors' own ms per image (latest.json
  `models`);
- GPU ms per image of the extractor's detectors: **published, not measured** (PUBLISHED below:
  Ultralytics' TensorRT figure for YOLOv8n, the model class of NudeNet 320n, scaled to our four
  detectors by their CPU cost measured here and to an L4 by its FP16 tensor throughput);
- replica start time: **measured** by the fault drill (tests/integration/test_fault_drills.py);
  node start time: an assumption, stated, not measured (no cloud here).

Everything else is arithmetic, in plain functions that tests/benchmarks/test_capacity.py checks.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"  # the newest make bench (not in git)
# The bench results docs/capacity.md was computed from, kept in git beside it so that a fresh
# clone reproduces the doc (make capacity refreshes it from RESULTS).
MEASURED = ROOT / "docs" / "capacity-bench.json"
DOC = ROOT / "docs" / "capacity.md"
DOC_BEGIN = "<!-- BEGIN benchmarks/capacity.py output -->"
DOC_END = "<!-- END benchmarks/capacity.py output -->"

SECONDS_PER_DAY = 86_400
DAILY_VOLUMES = (1e9, 3e9, 10e9)
PEAK_TO_MEAN = 3.0

# The serving roles whose CPU grows with traffic, as named in latest.json. Ray's own processes
# (controller, GCS, raylet, dashboard, log monitor, agents) cost per node, not per image: they
# are covered by the vCPU each node keeps back (NodeShape.reserved_vcpus).
PER_IMAGE_ROLES = {
    "preprocess": "replica:Preprocess",
    "extractor": "replica:AttributeExtractor",
    "scorer": "replica:QualityScorer",
    "ingress": "replica:Curator",
    "proxy": "serve proxy",
}

# Published, not measured here. Ultralytics, YOLOv8 detection models table
# (https://docs.ultralytics.com/models/yolov8/): YOLOv8n at 640 px, batch 1, TensorRT FP16 on an
# A100 (AWS p4d): 0.99 ms per image; ONNX Runtime on their CPU: 80.4 ms.
PUBLISHED = {
    "reference_model": "YOLOv8n 640 (Ultralytics), TensorRT FP16, A100, batch 1",
    "reference_gpu_ms": 0.99,
    "source": "https://docs.ultralytics.com/models/yolov8/ (table: Speed A100 TensorRT)",
    # NVIDIA datasheets, dense FP16 tensor TFLOPS: A100 SXM 312, L4 121. An L4 is taken to run
    # the same engine in 312/121 = 2.6x the time.
    "a100_fp16_tflops": 312.0,
    "l4_fp16_tflops": 121.0,
}


@dataclass(frozen=True)
class NodeShape:
    name: str
    instance: str
    vcpus: int
    gpus: int
    reserved_vcpus: int = 1   # Ray's per-node processes, the OS, the kubelet


CPU_NODE = NodeShape("cpu_worker", "c7i.8xlarge", 32, 0)
GPU_NODE = NodeShape("gpu_worker", "g6.2xlarge", 8, 1)   # one NVIDIA L4


@dataclass(frozen=True)
class Measured:
    """The measured inputs, CPU ms per image (one vCPU busy for that long per image)."""

    source: str
    date: str
    commit: str
    level: str
    images_per_s: float
    cpu_ms: dict[str, float]          # by stage (PER_IMAGE_ROLES)
    detector_ms: dict[str, float]     # the extractor's detectors alone, batch 1 p50
    nudenet_ms: float                 # NudeNet 320n (a YOLOv8n at 320 px) on this CPU
    replica_start_s: float            # an AttributeExtractor replica, killed -> serving
    replica_start_source: str


@dataclass(frozen=True)
class Assumptions:
    # p99 < 1 s held up to this share of a replica's peak throughput: measured 873 ms at 0.95
    # of peak (closed loop, c=16, README 2026-12-05); 0.9 keeps a margin.
    max_utilisation: float = 0.9
    # A doubling of the load within a minute, linear.
    surge_factor: float = 2.0
    surge_s: float = 60.0
    # Serve autoscaling: how long the metric takes to see a rise (half the look-back window
    # of a linear ramp) plus the upscale delay, then the replica start.
    look_back_period_s: float = 10.0
    upscale_delay_s: float = 5.0
    # A new machine: EC2 boot + setup + ray start + image/model pull. NOT measured (no cloud
    # here): an assumption, typical of g6/c7i instances from an AMI with the code baked in.
    node_start_s: float = 240.0
    # The GPU plan's efficiency on the published engine time. The figure is batch 1: batches
    # of 32 run faster per image, host copies and a GPU shared by two replicas slower; taken to
    # cancel (1.0) until a device run measures it (`pytest -m gpu`, issue 14).
    gpu_efficiency: float = 1.0
    # What one replica holds in flight at its full rate: a single-threaded CPU replica one
    # image; a batching GPU replica a running batch and the next one forming.
    in_flight_at_full_rate_cpu: float = 1.0
    gpu_max_batch_size: int = 32


# The plan sizes machines for load that is not shed, so it reads its CPU costs at a level that
# shed at most this share of its requests: at one that refuses most, each served image also pays
# the ingress's and proxy's work on the refusals (c=64 of the 2026-12-07 18:24 run refused 70%:
# ingress 52 and proxy 32 CPU ms an image, against 32 and 12 at c=2, which refused none).
MAX_REFUSED_SHARE = 0.05


def planning_level(levels: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest level that shed at most MAX_REFUSED_SHARE of its requests; the fastest of
    all when none did."""
    calm = [level for level in levels if level["refused_share"] <= MAX_REFUSED_SHARE]
    return max(calm or levels, key=lambda level: level["images_per_s"])


def load_measured(path: Path = MEASURED) -> Measured:
    data = json.loads(path.read_text())
    full = data["graphs"]["full"]
    peak = planning_level(full["levels"])
    by_role = peak["service_cpu_ms_per_image_by_role"]
    models = {m["model"]: m for m in data["models"]["models"]}

    def p50(name: str) -> float:
        batch1 = next(b for b in models[name]["batches"] if b["batch"] == 1)
        return float(batch1["ms_per_image"]["p50"])

    detectors = {"text": p50("text detector"), "objects": p50("objects detector"),
                 "faces_hands": p50("faces_hands detector"), "nudity": p50("nudity detector")}
    level = (f"{peak['mode']} loop, concurrency {peak['concurrency']}"
             if peak["mode"] == "closed" else f"open loop, {peak['offered_per_s']}/s")
    return Measured(
        source=str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        date=data["machine"]["date"],
        commit=data["machine"]["git_commit"][:7],
        level=level,
        images_per_s=float(peak["images_per_s"]),
        cpu_ms={stage: float(by_role[role]) for stage, role in PER_IMAGE_ROLES.items()},
        detector_ms=detectors,
        nudenet_ms=detectors["nudity"],
        replica_start_s=9.0,
        replica_start_source=("fault drill (tests/integration/test_fault_drills.py, README "
                              "2026-12-05): the AttributeExtractor's successor served 8-9 s "
                              "after its replica was killed (models loaded, CPU runtimes)"),
    )


# --- the arithmetic --------------------------------------------------------------------------


def peak_rate(images_per_day: float, peak_to_mean: float = PEAK_TO_MEAN) -> float:
    """Images per second at the daily peak."""
    return images_per_day / SECONDS_PER_DAY * peak_to_mean


def busy(rate: float, ms_per_image: float) -> float:
    """Devices (vCPUs or GPUs) kept busy by `rate` images/s at `ms_per_image` each."""
    return rate * ms_per_image / 1000.0


def gpu_ms_per_image(measured: Measured, published: dict[str, Any] = PUBLISHED,
                     efficiency: float = Assumptions.gpu_efficiency) -> float:
    """The extractor's L4 time per image: the published YOLOv8n engine time, times the
    detectors' cost in YOLOv8n-640 units (measured here on one CPU: NudeNet 320n is a YOLOv8n
    at a quarter of the pixels), scaled from the A100 to an L4, divided by the efficiency."""
    yolov8n_640_cpu_ms = 4.0 * measured.nudenet_ms
    units = sum(measured.detector_ms.values()) / yolov8n_640_cpu_ms
    a100_ms = units * float(published["reference_gpu_ms"])
    l4_ms = a100_ms * float(published["a100_fp16_tflops"]) / float(published["l4_fp16_tflops"])
    return l4_ms / efficiency


def reaction_s(a: Assumptions, replica_start_s: float, node_start_s: float = 0.0) -> float:
    """From the start of a linear rise until new replicas serve."""
    return a.look_back_period_s / 2 + a.upscale_delay_s + replica_start_s + node_start_s


def surge_load(reaction: float, a: Assumptions) -> float:
    """The load, as a multiple of the load before the surge, once new capacity serves."""
    return 1.0 + (a.surge_factor - 1.0) * min(1.0, reaction / a.surge_s)


def target_utilisation(reaction: float, a: Assumptions) -> float:
    """The steady utilisation the autoscaler must aim at so that the load reached by the time
    new replicas serve still runs at max_utilisation or less."""
    return a.max_utilisation / surge_load(reaction, a)


def nodes(vcpus_needed: float, gpus_needed: float, cpu_node: NodeShape = CPU_NODE,
          gpu_node: NodeShape = GPU_NODE) -> dict[str, int]:
    """GPU nodes for the GPUs (their spare vCPUs take CPU work), CPU nodes for the rest."""
    gpu_nodes = math.ceil(gpus_needed / gpu_node.gpus - 1e-9) if gpus_needed > 0 else 0
    spare = gpu_nodes * (gpu_node.vcpus - gpu_node.reserved_vcpus)
    cpu_usable = cpu_node.vcpus - cpu_node.reserved_vcpus
    cpu_nodes = max(0, math.ceil((vcpus_needed - spare) / cpu_usable - 1e-9))
    return {"cpu_nodes": cpu_nodes, "gpu_nodes": gpu_nodes, "gpus": gpu_nodes * gpu_node.gpus,
            "vcpus": cpu_nodes * cpu_node.vcpus + gpu_nodes * gpu_node.vcpus}


@dataclass
class Plan:
    name: str
    cpu_ms_per_image: float
    gpu_ms_per_image: float
    rows: list[dict[str, Any]] = field(default_factory=list)


def plans(measured: Measured, a: Assumptions) -> list[Plan]:
    cpu = measured.cpu_ms
    # CPU only: every stage on vCPUs at its measured cost (the CPU runtimes `auto` picked on the
    # bench host for the detectors, BRISQUE in torch).
    cpu_only = Plan("CPU only (measured)", sum(cpu.values()), 0.0)
    # GPU: the detectors' inference moves to the L4; the extractor's host side (decode of the
    # compact inputs, pre/post-processing, the judges) stays on vCPUs: its measured replica CPU
    # less the detectors' own time. BRISQUE stays counted on vCPUs at its CPU cost: its CUDA
    # path has no measured or published throughput yet.
    host_side = max(0.0, cpu["extractor"] - sum(measured.detector_ms.values()))
    gpu_cpu = cpu["preprocess"] + host_side + cpu["scorer"] + cpu["ingress"] + cpu["proxy"]
    gpu = Plan("GPU (L4) for the detectors (published engine time)", gpu_cpu,
               gpu_ms_per_image(measured, efficiency=a.gpu_efficiency))
    reaction = reaction_s(a, measured.replica_start_s)
    utilisation = target_utilisation(reaction, a)
    for plan in (cpu_only, gpu):
        for volume in DAILY_VOLUMES:
            rate = peak_rate(volume)
            vcpus = busy(rate, plan.cpu_ms_per_image) / utilisation
            gpus = busy(rate, plan.gpu_ms_per_image) / utilisation
            # A doubling at the daily peak cannot wait for machines (node_start_s >> a
            # minute): the machines for the doubled peak must already run.
            surge_vcpus = busy(rate * a.surge_factor, plan.cpu_ms_per_image) / a.max_utilisation
            surge_gpus = busy(rate * a.surge_factor, plan.gpu_ms_per_image) / a.max_utilisation
            plan.rows.append({
                "images_per_day": volume,
                "mean_images_per_s": volume / SECONDS_PER_DAY,
                "peak_images_per_s": rate,
                "at_peak": nodes(vcpus, gpus),
                "peak_doubled": nodes(surge_vcpus, surge_gpus),
            })
    return [cpu_only, gpu]


def autoscaling(measured: Measured, a: Assumptions) -> dict[str, Any]:
    reaction = reaction_s(a, measured.replica_start_s)
    with_node = reaction_s(a, measured.replica_start_s, a.node_start_s)
    utilisation = target_utilisation(reaction, a)
    return {
        "reaction_s": reaction,
        "load_when_replicas_serve": surge_load(reaction, a),
        "target_utilisation": utilisation,
        "reaction_with_new_node_s": with_node,
        "load_when_new_node_serves": surge_load(with_node, a),
        # Serve's target_ongoing_requests, per unit of what one replica holds in flight at its
        # full rate (Little's law: in flight = rate x time in the replica).
        "target_ongoing_share": utilisation,
    }


def serve_settings(measured: Measured, a: Assumptions) -> dict[str, dict[str, float]]:
    """autoscaling_config per deployment of graphs/serve_config.gpu.yaml that holds the target
    utilisation: target_ongoing_requests = utilisation x what a replica holds in flight at its
    full rate (Little's law), with the look-back and upscale delay the reaction time assumed."""
    utilisation = target_utilisation(reaction_s(a, measured.replica_start_s), a)
    common = {"look_back_period_s": a.look_back_period_s, "upscale_delay_s": a.upscale_delay_s,
              # Down slowly: a second surge soon after the first meets the replicas still up.
              "downscale_delay_s": 300.0}
    gpu_in_flight = 2.0 * a.gpu_max_batch_size
    cpu_target = round(utilisation * a.in_flight_at_full_rate_cpu, 2)
    return {
        "Preprocess": {**common, "target_ongoing_requests": cpu_target},
        "AttributeExtractor": {**common,
                               "target_ongoing_requests": round(utilisation * gpu_in_flight)},
        "QualityScorer": {**common, "target_ongoing_requests": round(utilisation * gpu_in_flight)},
    }


def report(measured: Measured, a: Assumptions) -> dict[str, Any]:
    return {"measured": asdict(measured), "published": PUBLISHED, "assumptions": asdict(a),
            "peak_to_mean": PEAK_TO_MEAN,
            "nodes": {"cpu": asdict(CPU_NODE), "gpu": asdict(GPU_NODE)},
            "autoscaling": autoscaling(measured, a),
            "serve_settings": serve_settings(measured, a),
            "plans": [asdict(p) for p in plans(measured, a)]}


# --- text -------------------------------------------------------------------------------------


def _count(value: float) -> str:
    return f"{value:,.0f}"


def markdown(result: dict[str, Any]) -> str:
    m, a, s = result["measured"], result["assumptions"], result["autoscaling"]
    lines = [
        f"Inputs: `{m['source']}` ({m['date'][:16].replace('T', ' ')} UTC, commit "
        f"{m['commit']}), the full graph at its {m['level']} peak ({m['images_per_s']:.2f} "
        "images/s on 2 vCPUs); CPU ms per image by serving role:",
        "",
        "| stage | CPU ms / image (measured) | images/s per vCPU |",
        "|---|---|---|",
    ]
    for stage, ms in m["cpu_ms"].items():
        lines.append(f"| {stage} | {ms:.1f} | {1000 / ms:.1f} |")
    total = sum(m["cpu_ms"].values())
    lines += [f"| **all, CPU only** | **{total:.1f}** | **{1000 / total:.2f}** |", ""]
    cpu_plan, gpu_plan = result["plans"]
    per_l4 = 1000 / gpu_plan["gpu_ms_per_image"]
    with_node = s["reaction_with_new_node_s"]
    lines += [
        f"GPU plan: the detectors ({sum(m['detector_ms'].values()):.1f} CPU ms here) on an L4 "
        f"at **{gpu_plan['gpu_ms_per_image']:.2f} GPU ms per image, derived from a published "
        f"figure, not measured** ({result['published']['reference_model']}: "
        f"{result['published']['reference_gpu_ms']} ms), so {per_l4:.0f} images/s per L4; "
        f"{gpu_plan['cpu_ms_per_image']:.1f} CPU ms per image stay on vCPUs.",
        "",
        f"Replica start: {m['replica_start_s']:.0f} s ({m['replica_start_source']}). "
        f"Reaction to a rise: {a['look_back_period_s'] / 2:.0f} s (half the look-back) + "
        f"{a['upscale_delay_s']:.0f} s (upscale delay) + {m['replica_start_s']:.0f} s = "
        f"**{s['reaction_s']:.1f} s**; by then a doubling within {a['surge_s']:.0f} s has "
        f"reached {s['load_when_replicas_serve']:.2f}x, so the replicas must run at "
        f"**{s['target_utilisation']:.2f}** of their peak rate or less "
        f"({a['max_utilisation']} / {s['load_when_replicas_serve']:.2f}). A new machine "
        f"({a['node_start_s']:.0f} s, assumed) serves only after {with_node:.0f} s, "
        "when the load has long doubled: the machines for a doubled peak must be running.",
        "",
    ]
    lines += ["Serve autoscaling that holds it (per deployment of the GPU serve config):", "",
              "| deployment | target_ongoing_requests | look_back_period_s | upscale_delay_s | "
              "downscale_delay_s |", "|---|---|---|---|---|"]
    for name, setting in result["serve_settings"].items():
        lines.append(f"| {name} | {setting['target_ongoing_requests']:g} | "
                     f"{setting['look_back_period_s']:g} | {setting['upscale_delay_s']:g} | "
                     f"{setting['downscale_delay_s']:g} |")
    lines.append("")
    for plan in (cpu_plan, gpu_plan):
        lines += [f"**{plan['name']}**: {plan['cpu_ms_per_image']:.1f} CPU ms"
                  + (f" + {plan['gpu_ms_per_image']:.2f} L4 ms" if plan["gpu_ms_per_image"]
                     else "") + " per image",
                  "",
                  "| images/day | mean /s | peak /s (x3) | at peak: CPU nodes | GPU nodes (L4) | "
                  "vCPUs | peak doubled: CPU nodes | GPU nodes |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in plan["rows"]:
            p, d = row["at_peak"], row["peak_doubled"]
            lines.append(
                f"| {row['images_per_day'] / 1e9:g} billion | {_count(row['mean_images_per_s'])} | "
                f"{_count(row['peak_images_per_s'])} | {_count(p['cpu_nodes'])} | "
                f"{_count(p['gpu_nodes'])} | {_count(p['vcpus'])} | {_count(d['cpu_nodes'])} | "
                f"{_count(d['gpu_nodes'])} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def write_doc(text: str, doc: Path = DOC) -> None:
    current = doc.read_text()
    head, rest = current.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    doc.write_text(f"{head}{DOC_BEGIN}\n{text}\n{DOC_END}{tail}")


def doc_section(doc: Path = DOC) -> str:
    """The generated part of docs/capacity.md, as written by write_doc."""
    return doc.read_text().split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=MEASURED)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args(argv)
    source = args.results
    if args.write_doc:
        # The doc cites the committed copy, so that its test can rebuild it from what is in git.
        if args.results.resolve() != MEASURED.resolve():
            shutil.copyfile(args.results, MEASURED)
        source = MEASURED
    result = report(load_measured(source), Assumptions())
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    text = markdown(result)
    if args.write_doc:
        write_doc(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
