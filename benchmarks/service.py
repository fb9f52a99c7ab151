"""The service under test, started exactly as in production: `serve run graphs/serve_config.yaml`
as a child process (its own local Ray), so the YAML's autoscaling, `max_ongoing_requests` and CPU
settings apply. Only the HTTP port is rewritten, in a temporary copy of the config.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import requests
import yaml

from benchmarks.procmon import ProcessTreeMonitor
from graphs.serve_config import DEFAULT_SERVE_CONFIG, read_serve_config
from graphs.serve_env import local_serve_env

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 180.0  # Ray start + replica start on a busy 2-core host (usually 8-20 s)
STOP_TIMEOUT_S = 30.0  # SIGINT -> serve.shutdown() -> Ray exits with the driver


class ServiceError(RuntimeError):
    """The service could not be started or did not become healthy."""


# Ports handed out for servers to bind later. Not the kernel's ephemeral range (32768-60999 on
# Linux), where any outgoing connection made meanwhile (Ray starts dozens) may take the port
# between this check and the bind, and not Ray's worker ports (10002-19999).
_LISTEN_PORTS = range(20000, 30000)


def free_port() -> int:
    """A loopback port nothing listens on now, for a server to bind soon."""
    for port in random.sample(_LISTEN_PORTS, 200):
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise ServiceError(f"no free port in {_LISTEN_PORTS.start}-{_LISTEN_PORTS.stop - 1}")


def bench_config(source: Path, port: int, destination: Path) -> Path:
    """A copy of the serve config that listens on loopback:`port`; nothing else changes."""
    config = read_serve_config(source)
    http_options = config.setdefault("http_options", {})
    http_options["host"] = LOOPBACK
    http_options["port"] = port
    destination.write_text(yaml.safe_dump(config, sort_keys=False))
    return destination


def is_model_deployment(name: str) -> bool:
    """AttributeExtractor, and the QualityScorer of every card (graphs.online names them)."""
    return name == "AttributeExtractor" or name.startswith("QualityScorer")


def technical_only(config: dict[str, Any]) -> dict[str, Any]:
    """The technical-only variant of a serve config: every application gets `args.models: null`
    (the graph is then Preprocess alone) and loses the model deployments' entries, which Serve
    would reject as naming deployments the application does not have."""
    variant = copy.deepcopy(config)
    for application in variant.get("applications") or []:
        application["args"] = {**(application.get("args") or {}), "models": None}
        if "deployments" in application:
            application["deployments"] = [
                entry for entry in application["deployments"]
                if not is_model_deployment(str(entry.get("name")))
            ]
    return variant


def write_technical_config(source: Path, destination: Path) -> Path:
    config = read_serve_config(source)
    destination.write_text(yaml.safe_dump(technical_only(config), sort_keys=False))
    return destination


def application_args(config: Path) -> dict[str, Any]:
    """The `args:` of the config's (first) application: the stage settings the service gets."""
    applications = read_serve_config(config).get("applications") or [{}]
    return dict(applications[0].get("args") or {})


class ServeService:
    """`serve run <config>` in its own process group, its health polled over HTTP, its process
    tree sampled; `stop()` (also run by `with`) leaves none of its processes behind."""

    def __init__(
        self,
        config: Path = DEFAULT_SERVE_CONFIG,
        port: int | None = None,
        log_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._log_path = log_path
        self._extra_env = extra_env or {}
        self._tmp = tempfile.TemporaryDirectory(prefix="curator-bench-")
        self._child: subprocess.Popen[bytes] | None = None
        self.monitor: ProcessTreeMonitor | None = None
        self.startup_s: float | None = None
        self.leftover_processes: int | None = None  # alive after stop(); None before stop()

    def __enter__(self) -> ServeService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        config = bench_config(self.config, self.port, Path(self._tmp.name) / "serve_config.yaml")
        # As `curator serve` runs it; --serve-env overrides.
        env = local_serve_env({**os.environ, **self._extra_env})
        # Never attach to (and, on exit, shut down Serve on) a Ray someone else started here.
        env.pop("RAY_ADDRESS", None)
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        log_path = self._log_path or Path(self._tmp.name) / "serve.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "ray.serve.scripts", "run", "--address", "local",
                   str(config)]
        logger.info("starting %s (log: %s)", " ".join(command[1:]), log_path)
        started = time.monotonic()
        # An ignored SIGINT is inherited through exec, and `serve run` stops only on SIGINT.
        restore_sigint = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        with log_path.open("wb") as log:
            # A new session: our process group to signal, and a Ctrl-C at the terminal reaches
            # only the driver, whose `finally` then stops the service in order.
            self._child = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_default_sigint if restore_sigint else None,
            )
        self.monitor = ProcessTreeMonitor(self._child.pid)
        self.monitor.start()
        self._wait_healthy(ready_timeout_s, log_path)
        self.startup_s = round(time.monotonic() - started, 1)
        logger.info("service healthy at %s after %.1f s", self.url, self.startup_s)

    def _wait_healthy(self, timeout_s: float, log_path: Path) -> None:
        assert self._child is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise ServiceError(
                    f"`serve run` exited with {self._child.returncode} before it was healthy; "
                    f"last lines of {log_path}:\n{_tail(log_path)}"
                )
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise ServiceError(
            f"no healthy /healthz within {timeout_s:.0f} s; last lines of {log_path}:\n"
            f"{_tail(log_path)}"
        )

    def ensure_alive(self, during: str) -> dict[str, Any]:
        """The /healthz answer; raise when `serve run` has exited or no longer answers it:
        figures from a dead service (connection refused at every level) would only mislead."""
        assert self._child is not None
        code = self._child.poll()
        if code is None:
            try:
                answer = requests.get(f"{self.url}/healthz", timeout=10)
                if answer.status_code == 200:
                    body: dict[str, Any] = answer.json()
                    return body
            except (requests.RequestException, ValueError):
                pass
        state = f"exited with {code}" if code is not None else "stopped answering /healthz"
        raise ServiceError(f"`serve run` {state} during {during} (something else on the host may "
                           f"have killed it); see {self._log_path or 'its log'}")

    def stop(self) -> None:
        """SIGINT (serve run shuts Serve down, then Ray exits with it), then SIGKILL to the group
        and to any process of the tree still alive. Safe to call twice."""
        child, self._child = self._child, None
        if child is None:
            return
        tree = self.monitor.seen_processes() if self.monitor else []
        if self.monitor:
            self.monitor.stop()
        if child.poll() is None:
            logger.info("stopping the service (SIGINT to pid %d)", child.pid)
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("serve run ignored SIGINT for %.0f s; killing its group",
                               STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # its session id is its pid
        child.wait()
        _, alive = psutil.wait_procs([p for p in tree if p.pid != child.pid], timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                logger.warning("killing leftover %s (pid %d)", process.name(), process.pid)
                process.kill()
        _, still_alive = psutil.wait_procs(alive, timeout=5)
        self.leftover_processes = len(still_alive)
        if still_alive:
            logger.error("%d service processes survived SIGKILL: %s", len(still_alive),
                         [process.pid for process in still_alive])
        self._tmp.cleanup()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
