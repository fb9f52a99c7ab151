"""`make cluster-demo`: cluster autoscaling under load, shown on a simulated multi-node cluster.

A fake cluster on this host (benchmarks.fake_cluster) with the node types of cluster.yaml: a
head, CPU workers, and "GPU" workers that declare one GPU and an L4 accelerator (labels: the
models run their CPU runtimes). The graph goes on it as `serve deploy` would put it on a real
one (the dashboard's REST API), with graphs/serve_config.gpu.yaml's settings scaled down to
this host. Open-loop traffic through the Serve proxy then goes quiet -> a step to several times
one model replica's capacity, held -> quiet, while the cluster is polled every second.

Expected: Serve adds model replicas under the step; those that do not fit on the GPU nodes up
make the autoscaler launch more; after the step Serve removes the extra replicas, and the nodes
left idle are terminated after the idle timeout; no request fails meanwhile.

    .venv/bin/python -m benchmarks.cluster_demo [--quick] [--step-rate 6] [--no-batch]

writes benchmarks/results/cluster_demo.json (`samples`: one a second) and cluster_demo.png. Then,
on a fresh cluster, a `curator batch --format parquet` job whose model actors ask for fake GPUs
(benchmarks.cluster_batch), under `batch` in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from benchmarks.arrivals import poisson_arrivals
from benchmarks.cluster_batch import run_batch_on_cluster
from benchmarks.fake_cluster import (
    DEFAULT_TEMP_DIR,
    HEAD_TYPE,
    ClusterSpec,
    FakeCluster,
    NodeType,
)
from benchmarks.images import render_images
from benchmarks.samples import Sample
from benchmarks.service import LOOPBACK, free_port
from benchmarks.timeline import (
    ClusterSnapshot,
    bin_samples,
    changes,
    is_failure,
    merge,
    plot_timeline,
    status_counts,
)
from benchmarks.traffic import Payload, _session, post_listing
from graphs.serve_config import GPU_SERVE_CONFIG, read_serve_config
from graphs.serve_env import CLUSTER_SERVE_ENV

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
APP_NAME = "curator"
MODEL_STAGES = ("AttributeExtractor", "QualityScorer")
READY_TIMEOUT_S = 300.0  # head, a CPU worker, a GPU worker, then the model replicas' start
POLL_S = 1.0

# cluster.yaml in miniature. CPU counts are scheduling labels (every node shares this host's two
# cores); a GPU node's CPU is small so that the models' CPU runtimes are not what limits how
# many replicas it takes: its one (fake) GPU does, as on a real g6 node.
DEMO_CLUSTER = ClusterSpec(
    head_cpus=1,
    workers={
        "cpu_worker": NodeType({"CPU": 2}, max_workers=2, min_workers=1),
        "gpu_worker": NodeType({"CPU": 1, "GPU": 1, "accelerator_type:L4": 1}, max_workers=4),
    },
    # cluster.yaml's 10 minutes, shortened so that the demo shows nodes leaving.
    idle_timeout_s=20.0,
)

# The real cluster's controller settings (packing, node compaction), with compaction starting
# after 10 s of steady deployments instead of 300, in proportion to the shortened idle timeout.
DEMO_SERVE_ENV = {**CLUSTER_SERVE_ENV, "RAY_SERVE_NODE_COMPACTION_DELAY_S": "10"}

# graphs/serve_config.gpu.yaml's deployments, scaled to this host: fewer replicas, queue targets
# a CPU replica can meet, delays of seconds rather than minutes. What places replicas is kept:
# the model stages ask for a share of a GPU (an L4), the others for CPU only.
_FAST = {"upscale_delay_s": 3, "downscale_delay_s": 20, "look_back_period_s": 12}
SCALED_DEPLOYMENTS: dict[str, dict[str, Any]] = {
    "Curator": {
        "ray_actor_options": {"num_cpus": 0.5},
        # Every fake node shares this host's two cores, so replicas added under the step add
        # no throughput, and what is in flight (throughput x latency) grows only with the
        # latency that admission lets through. A looser limit (4x the no-load latency, up to
        # 2 s, instead of 2x and 0.5 s) gives the model stages the queue that makes Serve ask
        # for their maximum, as the added capacity would on a real cluster.
        "user_config": {"admission": {"latency_target_ms": 2000, "tolerance": 4.0}},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 1,
                               "target_ongoing_requests": 32},
    },
    "Preprocess": {
        "ray_actor_options": {"num_cpus": 1},
        "max_ongoing_requests": 8,
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 3,
                               "target_ongoing_requests": 2, **_FAST},
    },
    "AttributeExtractor": {
        "ray_actor_options": {"num_cpus": 0.1, "num_gpus": 0.5, "accelerator_type": "L4"},
        "max_ongoing_requests": 16,
        "user_config": {"max_batch_size": 4, "batch_wait_timeout_s": 0.002},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 4,
                               "target_ongoing_requests": 1, **_FAST},
    },
    "QualityScorer": {
        "ray_actor_options": {"num_cpus": 0.1, "num_gpus": 0.25, "accelerator_type": "L4"},
        "max_ongoing_requests": 16,
        "user_config": {"max_batch_size": 4, "batch_wait_timeout_s": 0.002},
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 2,
                               "target_ongoing_requests": 1, **_FAST},
    },
}


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    rate_per_s: float  # listings/s offered (Poisson arrivals), one image each


@dataclass(frozen=True)
class Profile:
    """The load: its phases in order. The last (quiet) phase ends early once the cluster is back
    to its size before the step, so a run is no longer than it must be."""

    phases: tuple[Phase, ...]
    extractor_models: tuple[str, ...] = ("text", "objects", "faces_hands", "nudity")


def profile(step_rate: float, quick: bool = False) -> Profile:
    quiet = 0.5
    if quick:  # the test's: the same shape, shorter
        # After the step, a trickle and a longer wait: on a host loaded by other work a listing
        # can take seconds, and 0.5/s of them alone kept the extractor's ongoing requests above
        # its target of 1, so Serve never scaled back within 90 s (seen twice at load 10).
        return Profile((Phase("quiet", 10, quiet), Phase("step", 50, step_rate),
                        Phase("quiet", 150, 0.2)))
    return Profile((Phase("quiet", 20, quiet), Phase("step", 90, step_rate),
                    Phase("quiet", 120, quiet)))


def demo_serve_config(port: int, data_dir: Path, source: Path = GPU_SERVE_CONFIG
                      ) -> dict[str, Any]:
    """The GPU serve config, scaled down (SCALED_DEPLOYMENTS), listening on loopback:`port`,
    with the CPU runtimes and a local store; one proxy, on the head."""
    config = read_serve_config(source)
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {**config.get("http_options", {}), "host": LOOPBACK, "port": port}
    (application,) = config["applications"]
    args = application["args"]
    args["models"] = {**args["models"], "runtime": "auto", "max_batch_size_limit": 16,
                      "cpu_threads": 1, "detector_threads": 1}
    args["store"] = {"url": f"sqlite:///{data_dir / 'decisions.db'}",
                     "outbox_dir": str(data_dir / "outbox")}
    names = {entry["name"] for entry in application["deployments"]}
    if names != set(SCALED_DEPLOYMENTS):
        raise ValueError(f"the GPU config's deployments {sorted(names)} are not the ones the "
                         f"demo scales down {sorted(SCALED_DEPLOYMENTS)}")
    application["deployments"] = [
        _deep_update(entry, SCALED_DEPLOYMENTS[entry["name"]])
        for entry in application["deployments"]
    ]
    return config


def _deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class ServeClient:
    """The Serve REST API of the cluster's dashboard: what `serve deploy` and `serve status`
    use; the demo needs no Ray driver of its own."""

    def __init__(self, dashboard_port: int) -> None:
        self.base = f"http://{LOOPBACK}:{dashboard_port}/api/serve/applications/"

    def deploy(self, config: dict[str, Any]) -> None:
        answer = requests.put(self.base, json=config, timeout=60)
        answer.raise_for_status()

    def application(self) -> dict[str, Any]:
        answer = requests.get(self.base, timeout=10)
        answer.raise_for_status()
        applications: dict[str, Any] = answer.json().get("applications") or {}
        return applications.get(APP_NAME) or {}

    def replicas(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per deployment: the replicas RUNNING, and the target Serve's autoscaler has set."""
        deployments = self.application().get("deployments") or {}
        running = {name: sum(1 for replica in deployment.get("replicas") or []
                             if replica.get("state") == "RUNNING")
                   for name, deployment in deployments.items()}
        target = {name: int(deployment.get("target_num_replicas") or 0)
                  for name, deployment in deployments.items()}
        return running, target


def wait_ready(cluster: FakeCluster, serve: ServeClient, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    status = "?"
    while time.monotonic() < deadline:
        try:
            status = serve.application().get("status", "?")
            if status == "RUNNING" and requests.get(f"{url}/healthz", timeout=5).ok:
                return
            if status == "DEPLOY_FAILED":
                raise RuntimeError(f"deploy failed: {serve.application().get('message')}")
        except requests.RequestException:
            pass
        time.sleep(2.0)
    raise RuntimeError(f"the application was {status} after {timeout_s:.0f} s; logs under "
                       f"{cluster.log_dir}")


class Poller(threading.Thread):
    """Polls nodes and replicas every second until stopped."""

    def __init__(self, cluster: FakeCluster, serve: ServeClient, origin: float) -> None:
        super().__init__(name="cluster-poller", daemon=True)
        self._cluster, self._serve, self._origin = cluster, serve, origin
        self._stopping = threading.Event()
        self.snapshots: list[ClusterSnapshot] = []

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                status = self._cluster.status()
                nodes: dict[str, int] = {}
                for node in [*status.active_nodes, *status.idle_nodes]:
                    if node.ray_node_type_name != HEAD_TYPE:
                        nodes[node.ray_node_type_name] = nodes.get(node.ray_node_type_name,
                                                                   0) + 1
                running, target = self._serve.replicas()
                snapshot = ClusterSnapshot(
                    t=round(time.perf_counter() - self._origin, 2), nodes=nodes,
                    replicas=running, target_replicas=target,
                    pending_launches=len(status.pending_launches) + len(status.pending_nodes),
                )
                last = self.snapshots[-1] if self.snapshots else None
                if last is None or (snapshot.nodes, snapshot.replicas, snapshot.target_replicas
                                    ) != (last.nodes, last.replicas, last.target_replicas):
                    logger.info("t=%.0f s: nodes %s, replicas %s, target %s", snapshot.t,
                                snapshot.nodes, snapshot.replicas, snapshot.target_replicas)
                self.snapshots.append(snapshot)
            except Exception as error:  # one missed poll is a gap, not the end of the run
                logger.warning("poll failed: %s", error)
            self._stopping.wait(POLL_S)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=15)

    def back_to(self, before: ClusterSnapshot) -> bool:
        """Whether the last poll found the cluster as small as `before` again: its nodes, its
        replicas and Serve's targets."""
        if not self.snapshots:
            return False
        last = self.snapshots[-1]
        return all(all(now.get(k, 0) <= then.get(k, 0) for k in {*now, *then})
                   for now, then in ((last.nodes, before.nodes),
                                     (last.replicas, before.replicas),
                                     (last.target_replicas, before.target_replicas)))


async def drive(url: str, payloads: list[Payload], plan: Profile, origin: float,
                done_early: Callable[[], bool]) -> list[Sample]:
    """The profile's Poisson arrivals from `origin` on; in the last phase, stops sending once
    `done_early()`, then waits for what is in flight."""
    endpoint = f"{url}/v1/assess"
    arrivals: list[tuple[float, int]] = []
    start = 0.0
    for index, phase in enumerate(plan.phases):
        arrivals += [(start + offset, index)
                     for offset in poisson_arrivals(phase.rate_per_s, phase.seconds, index)]
        start += phase.seconds
    last_phase = len(plan.phases) - 1
    samples: list[Sample] = []
    async with _session(0) as session:
        async def one(number: int, due: float) -> None:
            payload = payloads[number % len(payloads)]
            samples.append(await post_listing(session, endpoint,
                                              payload.body(f"cluster-demo-{number}"), due))

        tasks = []
        for number, (offset, phase_index) in enumerate(arrivals):
            due = origin + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if phase_index == last_phase and done_early():
                break
            tasks.append(asyncio.create_task(one(number, due)))
        if tasks:
            await asyncio.gather(*tasks)
    return samples


def run_demo(plan: Profile, step_rate: float, temp_dir: Path | None = None,
             spec: ClusterSpec = DEMO_CLUSTER) -> dict[str, Any]:
    """Start the cluster, deploy, drive the profile, stop everything; the result as a dict."""
    cluster = FakeCluster(spec, temp_dir or DEFAULT_TEMP_DIR, extra_env=DEMO_SERVE_ENV)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    started = time.monotonic()
    # The decisions store's folder outlives the cluster only until the cluster has stopped.
    with tempfile.TemporaryDirectory(prefix="curator-cluster-data-") as data_dir, cluster:
        config = demo_serve_config(port, Path(data_dir))
        config["applications"][0]["args"]["models"]["extractor_models"] = list(
            plan.extractor_models)
        serve = ServeClient(cluster.dashboard_port)
        serve.deploy(config)
        wait_ready(cluster, serve, url, READY_TIMEOUT_S)
        ready_s = round(time.monotonic() - started, 1)
        logger.info("cluster and graph ready after %.0f s", ready_s)
        payloads = [Payload.build(image.image_id, image.b64)
                    for image in render_images(8, size=(640, 640))]
        origin = time.perf_counter() + 1.0
        poller = Poller(cluster, serve, origin)
        poller.start()
        time.sleep(1.5)
        # The size to come back to: before the step.
        before = poller.snapshots[-1] if poller.snapshots else ClusterSnapshot(0, {}, {})
        step_end = sum(phase.seconds for phase in plan.phases[:-1])
        settle = 5.0  # seconds the cluster must stay back at its size before the run ends
        back_since: list[float] = []

        def done_early() -> bool:
            now = time.perf_counter() - origin
            if now < step_end or not poller.back_to(before):
                back_since.clear()
                return False
            back_since.append(now)
            return now - back_since[0] >= settle

        try:
            samples = asyncio.run(drive(url, payloads, plan, origin, done_early))
        finally:
            time.sleep(POLL_S)
            poller.stop()
        seconds = int(time.perf_counter() - origin)
    timeline = merge(bin_samples(samples, origin, seconds), poller.snapshots)
    return {
        "ready_s": ready_s,
        "profile": [asdict(phase) for phase in plan.phases],
        "extractor_models": list(plan.extractor_models),
        "step_rate_per_s": step_rate,
        "cluster": {"head_cpus": spec.head_cpus, "idle_timeout_s": spec.idle_timeout_s,
                    "serve_env": DEMO_SERVE_ENV,
                    "workers": {name: asdict(node) for name, node in spec.workers.items()}},
        "serve_deployments": config["applications"][0]["deployments"],
        "status_counts": status_counts(samples),
        "failed": sum(1 for s in samples if is_failure(s.status)),
        "summary": summarize(timeline, plan),
        "events": {"nodes": changes(timeline, "nodes"),
                   "replicas": changes(timeline, "replicas"),
                   "target_replicas": changes(timeline, "target_replicas")},
        "samples": timeline,
    }


def summarize(timeline: list[dict[str, Any]], plan: Profile) -> dict[str, Any]:
    """Sizes before, at the peak and at the end; when nodes came and went, relative to the
    step's start and end."""
    step_start = plan.phases[0].seconds
    step_end = step_start + plan.phases[1].seconds
    before = next((s for s in reversed(timeline) if s["t"] < step_start), timeline[0])
    after_step = [s for s in timeline if s["t"] >= step_start]
    end = timeline[-1]

    def peak(key: str) -> dict[str, int]:
        names = {name for s in after_step for name in s[key]}
        return {name: max(s[key].get(name, 0) for s in after_step) for name in sorted(names)}

    def total_nodes(sample: dict[str, Any]) -> int:
        return sum(sample["nodes"].values())

    added = [s["t"] for s in after_step if total_nodes(s) > total_nodes(before)]
    peak_at = max(after_step, key=total_nodes)["t"] if after_step else None
    removed = [s["t"] for s in after_step
               if peak_at is not None and s["t"] > peak_at and total_nodes(s) <= total_nodes(
                   before)]
    step = [s for s in timeline if step_start <= s["t"] < step_end]
    return {
        "step_s": [step_start, step_end],
        "nodes_before": before["nodes"], "nodes_peak": peak("nodes"), "nodes_end": end["nodes"],
        "worker_nodes_added": max(total_nodes(s) for s in after_step) - total_nodes(before)
        if after_step else 0,
        "first_node_added_s_after_step_start": round(added[0] - step_start, 1)
        if added else None,
        "back_to_before_s_after_step_end": round(removed[0] - step_end, 1) if removed else None,
        "replicas_before": before["replicas"], "replicas_peak": peak("replicas"),
        "replicas_end": end["replicas"],
        "target_replicas_before": before["target_replicas"],
        "target_replicas_peak": peak("target_replicas"),
        "target_replicas_end": end["target_replicas"],
        "step_goodput_per_s": round(sum(s["goodput"] for s in step) / max(1, len(step)), 2),
        "step_shed_share": round(sum(s["shed"] for s in step) / max(1, len(step)), 3),
        "step_p99_ms_max": max((s["p99_ms"] for s in step if s["p99_ms"] is not None),
                               default=None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the test's shorter profile")
    parser.add_argument("--step-rate", type=float, default=6.0,
                        help="listings/s during the step (one AttributeExtractor replica "
                        "serves about 2/s on this host's CPU)")
    parser.add_argument("--no-batch", action="store_true",
                        help="skip the batch job on the cluster after the online run")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "cluster_demo.json")
    parser.add_argument("--plot", type=Path, default=RESULTS_DIR / "cluster_demo.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from benchmarks.report import machine_info

    machine = machine_info(REPO_ROOT)
    plan = profile(args.step_rate, args.quick)
    result = {"machine": machine, **run_demo(plan, args.step_rate)}
    if not args.no_batch:
        # A fresh cluster, so that the batch job's model actors meet no Serve replicas and the
        # GPU workers launched are theirs.
        with FakeCluster(DEMO_CLUSTER) as cluster:
            result["batch"] = run_batch_on_cluster(cluster)
        logger.info("batch on the cluster: %s", result["batch"]["actors_by_node_type"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    logger.info("wrote %s", args.json)
    spans, start = [], 0.0
    for phase in plan.phases:
        spans.append((phase.name, start, start + phase.seconds))
        start += phase.seconds
    plot_timeline(result["samples"], spans,
                  f"curator on a fake multi-node Ray cluster, {machine['cpu_model']}, "
                  f"{machine['date'][:10]}; step {args.step_rate:g} listings/s", args.plot)
    print(json.dumps({"summary": result["summary"], "status_counts": result["status_counts"],
                      "failed": result["failed"], "ready_s": result["ready_s"],
                      "batch": {k: v for k, v in result.get("batch", {}).items()
                                if k != "parquet_columns"}}, indent=1))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
