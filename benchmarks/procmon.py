"""Memory and CPU of the service's process tree, sampled from the driver with psutil.

The tree is the `serve run` child and all its descendants: GCS, raylet, dashboard, the Serve
controller, the HTTP proxy and the replicas. Summing RSS counts pages shared between them (Ray's
object store, shared libraries) once per process, so it overstates the footprint; PSS (each shared
page divided among its users) is reported beside it as the fairer total.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import psutil

logger = logging.getLogger(__name__)

MIB = 2**20
SAMPLE_INTERVAL_S = 0.5


def process_role(process: psutil.Process) -> str:
    """A short name for what a Ray process does; Ray sets titles like `ray::ServeReplica:a:B`."""
    try:
        name = process.name()
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "gone"
    if name in ("raylet", "gcs_server"):  # their argument lists name every other component
        return name
    if "ServeReplica:" in command:
        title = command.split("ServeReplica:", 1)[1].split()[0]
        deployment = title.split(":")[-1].split(".")[0]
        return f"replica:{deployment}"
    for marker, role in _ROLE_MARKERS:
        if marker in command:
            return role
    if command.startswith("ray::"):
        return command.split()[0].removeprefix("ray::").split(".")[0]
    return name


# Substring of the command line (or process title) -> role; the first match wins.
_ROLE_MARKERS = (
    ("ray::ProxyActor", "serve proxy"),
    ("ray::ServeController", "serve controller"),
    ("ray::IDLE", "idle worker"),
    ("ray::DashboardAgent", "dashboard agent"),
    ("ray::RuntimeEnvAgent", "runtime_env agent"),
    ("ray.serve.scripts", "serve run driver"),
    ("ray-dashboard-", "dashboard"),  # the dashboard's head modules, one process each
    ("dashboard/dashboard.py", "dashboard"),
    ("multiprocessing.forkserver", "dashboard"),  # the dashboard starts its modules this way
    ("multiprocessing.resource_tracker", "dashboard"),
    ("log_monitor.py", "log monitor"),
    ("autoscaler/_private/monitor.py", "autoscaler monitor"),
)


@dataclass
class WindowStats:
    """What the service did between `begin_window` and `end_window`."""

    wall_s: float = 0.0
    host_busy_cores: float = 0.0  # whole machine, all processes (others' tests included)
    host_steal_cores: float = 0.0  # CPU the hypervisor gave to other guests (a VM's noise)
    peak_rss_mib: float = 0.0
    peak_pss_mib: float = 0.0
    processes: int = 0  # most processes seen in one sample
    replicas: dict[str, int] = field(default_factory=dict)  # deployment -> most replicas seen
    cpu_s_by_role: dict[str, float] = field(default_factory=dict)  # CPU seconds spent in window


def _host_busy_s() -> float:
    """CPU seconds the whole machine has spent not idle, summed over cores."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _host_steal_s() -> float:
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


@dataclass
class _Sample:
    rss: int
    pss: int
    by_role_rss: dict[str, int]
    replicas: dict[str, int]
    processes: int
    replica_rss: dict[int, tuple[str, int]]  # pid -> (deployment, RSS bytes)


class ProcessTreeMonitor:
    """Samples a process tree every `interval_s` on a daemon thread; also remembers every
    process it has seen, so that the caller can make sure none outlives the run."""

    def __init__(self, root_pid: int, interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self._root = psutil.Process(root_pid)
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="procmon", daemon=True)
        self._seen: dict[int, psutil.Process] = {root_pid: self._root}
        self._roles: dict[int, str] = {}
        self._cpu_s: dict[int, float] = {}  # last CPU seconds seen per pid
        self._window_cpu_start: dict[int, float] | None = None
        self._window_started = 0.0
        self._window_host_busy_s = 0.0
        self._window_host_steal_s = 0.0
        self._window = WindowStats()
        self._peak = WindowStats()
        self._peak_breakdown_mib: dict[str, float] = {}
        self._replica_rss: dict[int, tuple[str, int]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def seen_processes(self) -> list[psutil.Process]:
        """Every process of the tree ever sampled (psutil checks PID reuse before signalling)."""
        self._sample_once()  # pick up processes born since the last tick
        with self._lock:
            return list(self._seen.values())

    def begin_window(self) -> None:
        self._sample_once()  # a fresh CPU baseline, not one up to `interval_s` old
        with self._lock:
            self._window = WindowStats()
            self._window_cpu_start = dict(self._cpu_s)
            self._window_started = time.monotonic()
            self._window_host_busy_s = _host_busy_s()
            self._window_host_steal_s = _host_steal_s()

    def end_window(self) -> WindowStats:
        self._sample_once()
        with self._lock:
            window = self._window
            wall_s = time.monotonic() - self._window_started
            window.wall_s = round(wall_s, 2)
            window.host_busy_cores = round((_host_busy_s() - self._window_host_busy_s) / wall_s, 2)
            window.host_steal_cores = round(
                (_host_steal_s() - self._window_host_steal_s) / wall_s, 2
            )
            start = self._window_cpu_start or {}
            by_role: dict[str, float] = {}
            for pid, cpu_s in self._cpu_s.items():
                role = self._roles.get(pid, "?")
                by_role[role] = by_role.get(role, 0.0) + cpu_s - start.get(pid, 0.0)
            window.cpu_s_by_role = {
                role: round(seconds, 2)
                for role, seconds in sorted(by_role.items(), key=lambda item: -item[1])
                if seconds >= 0.005
            }
            self._window_cpu_start = None
            return window

    @property
    def peak(self) -> WindowStats:
        with self._lock:
            return self._peak

    @property
    def peak_breakdown_mib(self) -> dict[str, float]:
        """RSS by role at the sample with the highest total RSS."""
        with self._lock:
            return dict(self._peak_breakdown_mib)

    def replica_rss_mib(self) -> dict[str, float]:
        """RSS of each replica process alive at the last sample, MiB, keyed
        `<deployment> pid <pid>`: a replica Serve restarts comes back under a new key."""
        with self._lock:
            return {f"{deployment} pid {pid}": round(rss / MIB, 1)
                    for pid, (deployment, rss) in sorted(self._replica_rss.items())}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample_once()
            except Exception:  # a sampler must never take the benchmark down
                logger.exception("process sampling failed")
            self._stop.wait(self._interval_s)

    def _sample_once(self) -> None:
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return
        rss = pss = 0
        by_role: dict[str, int] = {}
        replicas: dict[str, int] = {}
        replica_rss: dict[int, tuple[str, int]] = {}
        cpu: dict[int, float] = {}
        roles: dict[int, str] = {}
        for process in processes:
            try:
                with process.oneshot():
                    memory = process.memory_full_info()
                    times = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            # Read every time: a worker's title changes when it becomes an actor.
            role = process_role(process)
            roles[process.pid] = role
            rss += memory.rss
            pss += getattr(memory, "pss", memory.rss)
            by_role[role] = by_role.get(role, 0) + memory.rss
            cpu[process.pid] = times.user + times.system
            if role.startswith("replica:"):
                deployment = role.split(":", 1)[1]
                replicas[deployment] = replicas.get(deployment, 0) + 1
                replica_rss[process.pid] = (deployment, memory.rss)
        sample = _Sample(rss, pss, by_role, replicas, len(roles), replica_rss)
        with self._lock:
            for process in processes:
                self._seen.setdefault(process.pid, process)
            self._roles.update(roles)
            self._cpu_s.update(cpu)
            self._replica_rss = sample.replica_rss
            self._record(self._window, sample)
            if self._record(self._peak, sample):
                self._peak_breakdown_mib = {
                    role: round(value / MIB, 1)
                    for role, value in sorted(by_role.items(), key=lambda item: -item[1])
                }

    @staticmethod
    def _record(stats: WindowStats, sample: _Sample) -> bool:
        """Fold one sample into `stats`; True when it set a new RSS peak."""
        new_peak = sample.rss / MIB > stats.peak_rss_mib
        stats.peak_rss_mib = max(stats.peak_rss_mib, round(sample.rss / MIB, 1))
        stats.peak_pss_mib = max(stats.peak_pss_mib, round(sample.pss / MIB, 1))
        stats.processes = max(stats.processes, sample.processes)
        for deployment, count in sample.replicas.items():
            stats.replicas[deployment] = max(stats.replicas.get(deployment, 0), count)
        return new_peak
