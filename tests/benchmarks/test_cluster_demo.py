"""The cluster demo (issue 14): its serve config and timeline arithmetic (fast), and a short run
on the simulated multi-node cluster that must show nodes and replicas added under a load step
and removed after it, with no failed request (slow)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import ray
from ray.serve.schema import ServeDeploySchema

from benchmarks.cluster_demo import (
    DEMO_CLUSTER,
    MODEL_STAGES,
    SCALED_DEPLOYMENTS,
    demo_serve_config,
    profile,
    run_demo,
    summarize,
)
from benchmarks.fake_cluster import FakeCluster, autoscaling_config
from benchmarks.samples import Answer, Sample
from benchmarks.timeline import ClusterSnapshot, bin_samples, changes, merge


def test_the_demo_config_is_the_gpu_config_scaled_down(tmp_path: Path) -> None:
    config = demo_serve_config(8123, tmp_path)
    ServeDeploySchema.model_validate(config)  # what `serve deploy` accepts
    assert config["proxy_location"] == "HeadOnly"
    assert config["http_options"]["port"] == 8123
    (application,) = config["applications"]
    assert application["args"]["models"]["runtime"] == "auto"  # CPU runtimes on fake GPUs
    deployments = {entry["name"]: entry for entry in application["deployments"]}
    assert set(deployments) == set(SCALED_DEPLOYMENTS)
    for name in MODEL_STAGES:
        options = deployments[name]["ray_actor_options"]
        assert options["num_gpus"] > 0 and options["accelerator_type"] == "L4"
        autoscaling = deployments[name]["autoscaling_config"]
        assert autoscaling["min_replicas"] < autoscaling["max_replicas"]
    # Only the GPU workers have what the model stages ask for.
    gpu_types = [name for name, node in DEMO_CLUSTER.workers.items()
                 if node.resources.get("GPU") and node.resources.get("accelerator_type:L4")]
    assert gpu_types == ["gpu_worker"]


def test_the_autoscaler_config_points_new_nodes_at_this_cluster() -> None:
    config = autoscaling_config(DEMO_CLUSTER, "127.0.0.1:23456")
    assert config["provider"]["gcs_address"] == "127.0.0.1:23456"
    assert config["provider"]["module"].endswith("FakeMultiNodeProvider")
    assert config["idle_timeout_minutes"] * 60 == DEMO_CLUSTER.idle_timeout_s
    assert config["available_node_types"]["ray.head.default"]["resources"] == {
        "CPU": DEMO_CLUSTER.head_cpus}


def sample(due: float, finished: float, status: str = "200") -> Sample:
    return Sample(due, due, finished, status, Answer(images_ok=1 if status == "200" else 0))


def test_bins_count_by_the_second_requests_finished_in() -> None:
    samples = [sample(0.1, 0.5), sample(0.2, 1.4), sample(1.1, 1.6, "429"),
               sample(1.2, 2.5, "503"), sample(1.3, 2.7, "client:TimeoutError")]
    bins = bin_samples(samples, origin=0.0, seconds=3)
    assert [b["offered"] for b in bins] == [2, 3, 0]
    assert [b["goodput"] for b in bins] == [1, 1, 0]
    assert [b["in_flight"] for b in bins] == [0, 1, 2]
    assert bins[1]["shed"] == 0.5 and bins[1]["p99_ms"] == 1200.0
    assert [b["failed"] for b in bins] == [0, 0, 2]


def test_snapshots_merge_into_their_seconds_and_changes_are_listed() -> None:
    bins = bin_samples([], origin=0.0, seconds=4)
    snapshots = [ClusterSnapshot(0.2, {"gpu_worker": 1}, {"AttributeExtractor": 1}),
                 ClusterSnapshot(1.9, {"gpu_worker": 3}, {"AttributeExtractor": 4}),
                 ClusterSnapshot(3.5, {"gpu_worker": 1}, {"AttributeExtractor": 1})]
    timeline = merge(bins, snapshots)
    assert [s["nodes"]["gpu_worker"] for s in timeline] == [1, 3, 3, 1]
    assert changes(timeline, "nodes") == [
        {"t": 1, "name": "gpu_worker", "from": 1, "to": 3},
        {"t": 3, "name": "gpu_worker", "from": 3, "to": 1}]


def test_the_summary_times_nodes_from_the_step() -> None:
    plan = profile(6.0, quick=True)  # step from 10 s to 60 s
    nodes = [1] * 15 + [3] * 50 + [1] * 10
    bins = bin_samples([], origin=0.0, seconds=len(nodes))
    timeline = merge(bins, [ClusterSnapshot(t, {"gpu_worker": n}, {"AttributeExtractor": n},
                                            target_replicas={"AttributeExtractor": n})
                            for t, n in enumerate(nodes)])
    summary = summarize(timeline, plan)
    assert summary["worker_nodes_added"] == 2
    # A second's bin shows the cluster as polled by its end: the poll at 15 s is bin 14's.
    assert summary["first_node_added_s_after_step_start"] == 4
    assert summary["back_to_before_s_after_step_end"] == 4
    assert summary["replicas_peak"] == summary["target_replicas_peak"] == {
        "AttributeExtractor": 3}


@pytest.mark.slow
@pytest.mark.integration
def test_nodes_and_replicas_follow_a_load_step() -> None:
    # Its own temp dir (short: Ray's socket paths live under it), apart from `make cluster-demo`.
    temp_dir = Path(tempfile.mkdtemp(prefix="curator-fc-"))
    try:
        result = run_demo(profile(6.0, quick=True), 6.0, temp_dir=temp_dir)
    finally:
        leftovers = FakeCluster(DEMO_CLUSTER, temp_dir)._find_processes()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert leftovers == []
    assert not ray.is_initialized()
    summary = result["summary"]
    extractor = "AttributeExtractor"
    # Serve's decision, up under the step and back after it. Whether the added replicas also
    # finish starting within the step depends on the host: each loads four models on the
    # same two cores that serve.
    assert summary["target_replicas_peak"][extractor] > summary["target_replicas_before"][
        extractor], result["events"]
    assert summary["target_replicas_end"] == summary["target_replicas_before"]
    assert summary["replicas_end"][extractor] == summary["replicas_before"][extractor]
    assert summary["worker_nodes_added"] >= 2, result["events"]
    assert summary["back_to_before_s_after_step_end"] is not None, result["events"]
    assert summary["nodes_end"] == summary["nodes_before"]
    assert result["failed"] == 0, result["status_counts"]
