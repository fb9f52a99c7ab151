"""Batch mode on the simulated cluster (issue 14, part 2): `curator batch` run as a user would,
against the fake cluster's address, with the model actors asking for half a (fake) GPU each, so
that the autoscaler launches GPU workers for them; answers as JSON Lines and Parquet.

Reports where each stage's actors ran (node type), the nodes launched meanwhile, and the job's
summary and output files. Used by `make cluster-demo` after the online run.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.batch import write_manifest
from benchmarks.fake_cluster import HEAD_TYPE, FakeCluster
from benchmarks.images import render_images

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
JOB_TIMEOUT_S = 600.0
GPUS_PER_MODEL_ACTOR = 0.5  # two model actors to a GPU, as the GPU serve config's extractor
# The batch stages' actor classes (graphs/batch_stages.py), as Ray names their actors.
STAGE_CLASSES = ("ReadImages", "ExtractAttributes", "ScoreQuality", "AssessListings")


def run_batch_on_cluster(cluster: FakeCluster, images: int = 32) -> dict[str, Any]:
    """One `curator batch --format parquet` job of `images` one-image listings on `cluster`."""
    node_types: dict[str, str] = {}  # node id -> node type, of every node seen during the job
    peak: dict[str, int] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                status = cluster.status()
                counts: dict[str, int] = {}
                for node in [*status.active_nodes, *status.idle_nodes]:
                    if node.node_id:
                        node_types[node.node_id] = node.ray_node_type_name
                    if node.ray_node_type_name != HEAD_TYPE:
                        counts[node.ray_node_type_name] = counts.get(
                            node.ray_node_type_name, 0) + 1
                for name, count in counts.items():
                    peak[name] = max(peak.get(name, 0), count)
            except Exception as error:
                logger.warning("poll failed: %s", error)
            stop.wait(1.0)

    with tempfile.TemporaryDirectory(prefix="curator-cluster-batch-") as workdir:
        folder = Path(workdir)
        files = []
        for image in render_images(8, size=(640, 640)):
            files.append(folder / f"{image.image_id}.jpg")
            files[-1].write_bytes(image.jpeg)
        write_manifest(folder / "manifest.csv", files, images)
        out = folder / "answers"
        command = [str(Path(sys.executable).with_name("curator")), "batch",
                   str(folder / "manifest.csv"), "--out", str(out), "--address", cluster.address,
                   "--gpus-per-model-actor", str(GPUS_PER_MODEL_ACTOR), "--accelerator-type", "L4",
                   "--batch-size", "8",
                   "--format", "parquet"]
        logger.info("running %s", " ".join(command[1:]))
        poller = threading.Thread(target=poll, name="batch-poller", daemon=True)
        poller.start()
        started = time.monotonic()
        try:
            done = subprocess.run(command, cwd=REPO_ROOT, env=cluster.env, capture_output=True,
                                  text=True, timeout=JOB_TIMEOUT_S, check=False)
        finally:
            stop.set()
            poller.join(timeout=10)
        wall_s = round(time.monotonic() - started, 1)
        if done.returncode != 0:
            raise RuntimeError(f"curator batch exited with {done.returncode}:\n"
                               f"{done.stderr[-3000:]}")
        jsonl_rows = sum(len(file.read_text().splitlines())
                         for file in sorted(out.glob("answers-*.jsonl")))
        parquet_files = sorted(out.glob("answers-*.parquet"))
        table = pq.read_table(parquet_files) if parquet_files else None
        return {
            "images": images,
            "wall_s": wall_s,
            "command": " ".join(["curator", *command[1:]]),
            "summary": summary_lines(done.stdout),
            "jsonl_rows": jsonl_rows,
            "parquet_rows": table.num_rows if table is not None else 0,
            "parquet_columns": table.schema.names if table is not None else [],
            "actors_by_node_type": actor_placement(cluster, node_types),
            "worker_nodes_peak": peak,
        }


def summary_lines(stdout: str) -> list[str]:
    """The command's summary (from its `listings` line on), without the autoscaler's event lines
    that Ray prints to a driver on the cluster."""
    lines = stdout.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("listings ")), len(lines))
    return lines[start:]


def actor_placement(cluster: FakeCluster, node_types: dict[str, str]) -> dict[str, list[str]]:
    """For each batch stage, the node types its actors ran on (from Ray's state API: the job's
    actors are dead by now, and still listed)."""
    from ray.util.state import list_actors

    actors = list_actors(address=cluster.address, limit=1000, detail=True,
                         raise_on_missing_output=False)
    placement: dict[str, set[str]] = {}
    for actor in actors:
        # Ray Data's pool actors are all `_MapWorker`s; their repr names the stage's class.
        name = f"{getattr(actor, 'class_name', '')} {getattr(actor, 'repr_name', '')}"
        stage = next((s for s in STAGE_CLASSES if s in name), None)
        if stage is not None:
            node = str(getattr(actor, "node_id", "") or "")
            placement.setdefault(stage, set()).add(node_types.get(node, node or "?"))
    return {stage: sorted(types) for stage, types in sorted(placement.items())}
