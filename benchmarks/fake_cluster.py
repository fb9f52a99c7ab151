"""A simulated multi-node Ray cluster on this one machine: Ray's `fake_multinode` node provider
under autoscaler v2. The head is a `ray start --head --block` child of its own; the autoscaler
(the head's monitor process) starts each worker "node" as another raylet on this host, with the
resources its node type declares, and stops it when it has been idle for the timeout.

Kept apart from any other Ray on the host (tests and benchmarks run beside it):
- its own temp dir, so a plain `ray.init()` elsewhere, which reads /tmp/ray/ray_current_cluster,
  never finds it;
- its own GCS and dashboard ports;
- stopped by killing its own process group and the processes that name its temp dir, never by
  `ray stop`, which kills every Ray on the host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import yaml

from benchmarks.service import LOOPBACK, free_port

logger = logging.getLogger(__name__)

DEFAULT_TEMP_DIR = Path("/tmp/curator-cluster-demo")
FAKE_HEAD_NODE_ID = "f" * 51 + "00000"  # the provider's id for the head (node_provider.py)
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider"
HEAD_TYPE = "ray.head.default"  # the name the fake provider gives the head node
# Autoscaler v2 matches Ray nodes to the provider's instances by these; without them it takes
# the head for a node it does not manage, and launches nothing.
HEAD_IDENTITY = {
    "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID,
    "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
    "RAY_NODE_TYPE_NAME": HEAD_TYPE,
}
START_TIMEOUT_S = 90.0
# On SIGTERM the head drains for up to 30 s, waiting on work that is all ours to end anyway.
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NodeType:
    """A worker node type: its resources (`CPU`, `GPU`, custom ones) and how many may run."""

    resources: dict[str, float]
    max_workers: int
    min_workers: int = 0


@dataclass(frozen=True)
class ClusterSpec:
    """The node types of `cluster.yaml` in miniature. CPU counts are Ray's logical labels: the
    "nodes" all share this host's cores."""

    head_cpus: int = 1
    workers: dict[str, NodeType] = field(default_factory=dict)
    idle_timeout_s: float = 20.0
    max_workers: int = 8


def autoscaling_config(spec: ClusterSpec, gcs_address: str) -> dict[str, Any]:
    """The autoscaler's cluster config for the fake provider."""
    node_types: dict[str, Any] = {
        HEAD_TYPE: {
            # Must equal what the head's raylet declares (`--num-cpus`), or the autoscaler
            # plans with resources the head does not have.
            "resources": {"CPU": spec.head_cpus},
            "node_config": {},
            "max_workers": 0,
        },
    }
    for name, node_type in spec.workers.items():
        node_types[name] = {
            "resources": dict(node_type.resources),
            "node_config": {},
            "min_workers": node_type.min_workers,
            "max_workers": node_type.max_workers,
        }
    return {
        "cluster_name": "curator-fake",
        "max_workers": spec.max_workers,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": spec.idle_timeout_s / 60.0,
        "provider": {
            # Ray's fake provider, named as an external module: under its own type name,
            # `fake_multinode`, the autoscaler first loads that type's defaults from an
            # example.yaml which the Ray 2.60 wheel does not ship, and its monitor dies.
            "type": "external",
            "module": FAKE_PROVIDER,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            # Autoscaler v2 asks the provider for several nodes at once.
            "launch_multiple": True,
            # Without it the provider points new raylets at port 6379 on this host: the default
            # GCS port, which is some other Ray's, or nobody's.
            "gcs_address": gcs_address,
            "head_node_id": FAKE_HEAD_NODE_ID,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": node_types,
        "head_node_type": HEAD_TYPE,
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def cluster_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the head and for drivers that connect to it."""
    env = {**os.environ, **(extra or {})}
    env.pop("RAY_ADDRESS", None)  # never someone else's cluster
    env.update({
        "RAY_FAKE_CLUSTER": "1",
        "RAY_enable_autoscaler_v2": "1",
        # A token in ~/.ray turns on token auth for every cluster started here; this one is
        # private to the host and its drivers carry no token.
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        # The autoscaler's loop: every second instead of five, so nodes follow demand closely.
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
    })
    # Fake GPUs are labels: a CUDA_VISIBLE_DEVICES listing fewer devices than a node type's
    # GPU count would make Ray refuse to start that node's raylet.
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


class FakeCluster:
    """Start with `start()` (or `with`), connect drivers to `address`, stop with `stop()`."""

    def __init__(self, spec: ClusterSpec, temp_dir: Path = DEFAULT_TEMP_DIR,
                 extra_env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.temp_dir = temp_dir
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.address = f"{LOOPBACK}:{self.gcs_port}"
        self.env = cluster_env(extra_env)
        self._head: subprocess.Popen[bytes] | None = None
        self._session_id: int | None = None  # the head's session: all its descendants'

    def __enter__(self) -> FakeCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def log_dir(self) -> Path:
        return self.temp_dir / "session_latest" / "logs"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        if self._find_processes():
            raise RuntimeError(f"processes of an earlier cluster under {self.temp_dir} still run")
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        self.temp_dir.mkdir(parents=True)
        config_path = self.temp_dir / "autoscaling.yaml"
        config = autoscaling_config(self.spec, self.address)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [
            str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
            f"--node-ip-address={LOOPBACK}", f"--port={self.gcs_port}",
            f"--temp-dir={self.temp_dir}", f"--num-cpus={self.spec.head_cpus}", "--num-gpus=0",
            f"--dashboard-port={self.dashboard_port}", "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={free_port()}",
            # Fixed (52365) by default: a port any other Ray on this host may hold.
            f"--dashboard-agent-listen-port={free_port()}",
            f"--autoscaling-config={config_path}", "--disable-usage-stats",
        ]
        logger.info("starting the fake cluster's head: %s", " ".join(command))
        with (self.temp_dir / "head.log").open("wb") as log:
            # Its own session: one process group to signal at the end.
            self._head = subprocess.Popen(command, env={**self.env, **HEAD_IDENTITY}, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        self._session_id = self._head.pid
        self._wait_head(timeout_s)

    def _wait_head(self, timeout_s: float) -> None:
        assert self._head is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._head.poll() is not None:
                log = (self.temp_dir / "head.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the head exited with {self._head.returncode}:\n{log}")
            try:
                if self.nodes().get(HEAD_TYPE):
                    return
            except Exception as error:  # not up yet
                logger.debug("cluster status: %s", error)
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"the head was not up within {timeout_s:.0f} s")

    def status(self) -> Any:
        """Autoscaler v2's view: nodes by state, pending launches, resource demand."""
        from ray.autoscaler.v2.sdk import get_cluster_status

        return get_cluster_status(self.address)

    def nodes(self) -> Counter[str]:
        """Running nodes per node type (idle ones included)."""
        status = self.status()
        return Counter(node.ray_node_type_name
                       for node in [*status.active_nodes, *status.idle_nodes])

    def stop(self) -> None:
        """SIGTERM to the head (`ray start --block` then stops its own processes), then SIGKILL
        to what is left of the cluster: the head's process group and any process naming its
        temp dir (the worker raylets the autoscaler started, and their workers)."""
        head, self._head = self._head, None
        if head is not None and head.poll() is None:
            tree = _tree(head.pid)
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.info("the head still drains after %.0f s: killing it", STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        else:
            tree = []
        leftovers = {p.pid: p for p in [*tree, *self._find_processes()] if p.is_running()}
        for process in leftovers.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        _, alive = psutil.wait_procs(list(leftovers.values()), timeout=10)
        if alive:
            logger.error("cluster processes survived SIGKILL: %s", [p.pid for p in alive])
        self._session_id = None

    def _find_processes(self) -> list[psutil.Process]:
        """This host's processes of this cluster: those in its sessions, and those whose
        command line names its temp dir."""
        found = []
        marker = str(self.temp_dir)
        session_id = self._session_id
        for process in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error, OSError):
                if process.pid == os.getpid():
                    continue
                cmdline = " ".join(process.info["cmdline"] or [])
                if marker in cmdline or (session_id is not None
                                         and os.getsid(process.pid) == session_id):
                    found.append(process)
        return found


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
