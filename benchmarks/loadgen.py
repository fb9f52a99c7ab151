"""The load generator: each load level (closed loop at `c`, or open loop at a rate) runs in a
fresh spawned process that gets the request bodies and sends back a `LevelResult`.

A separate process, so that its event loop never shares a GIL with the driver's sampler; on a
2-core host it still shares the CPUs with the service, and its CPU time is reported so the
reader can see how much of the machine the client took.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from urllib.parse import urlsplit

from benchmarks.over_time import bucket_figures, summarize_over_time
from benchmarks.samples import LevelResult, summarize_level
from benchmarks.traffic import (
    OPEN_LOOP_DRAIN_S,
    REQUEST_TIMEOUT_S,
    Payload,
    closed_loop,
    open_loop,
)

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
RESULT_GRACE_S = 60.0  # beyond every request's own timeout, before a level is declared hung


@dataclass(frozen=True)
class LoadSpec:
    """One level: `concurrency` for a closed loop, or `rate_per_s` (+ `seed`) for an open one."""

    warmup_s: float
    duration_s: float
    concurrency: int | None = None
    rate_per_s: float | None = None
    seed: int = 0
    # Open loop: also cut the window into buckets of this many seconds (the soak's figures over
    # time, in `extra["over_time"]`).
    bucket_s: float | None = None

    @property
    def name(self) -> str:
        return (f"concurrency {self.concurrency}" if self.rate_per_s is None
                else f"open loop {self.rate_per_s:.2f} listings/s")


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the load generator only talks to loopback, not {host!r}")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _level_process(
    connection: Connection, url: str, payloads: list[Payload], spec: LoadSpec
) -> None:
    outcome: LevelResult | Exception
    try:
        cpu_before, began = _cpu_s(), time.perf_counter()
        if spec.rate_per_s is None:
            assert spec.concurrency is not None
            samples, window = asyncio.run(closed_loop(
                url, payloads, spec.concurrency, spec.warmup_s, spec.duration_s))
        else:
            samples, window = asyncio.run(open_loop(
                url, payloads, spec.rate_per_s, spec.warmup_s, spec.duration_s, spec.seed))
        outcome = summarize_level(
            samples, window, concurrency=spec.concurrency, offered_per_s=spec.rate_per_s,
            client_cpu_s=_cpu_s() - cpu_before, run_s=time.perf_counter() - began,
        )
        if spec.bucket_s:
            outcome.extra["over_time"] = summarize_over_time(samples, window, spec.bucket_s)
            outcome.extra["totals"] = bucket_figures(
                [s for s in samples if window[0] <= s.due < window[1]])
            # perf_counter is CLOCK_MONOTONIC on Linux, one clock for every process, so the
            # driver can line its own samples (RSS) up with this window.
            outcome.extra["window_perf_counter"] = list(window)
    except KeyboardInterrupt:
        return  # Ctrl-C reached the whole terminal group; the driver stops the run
    except Exception as error:  # the driver must hear why, not just see a dead process
        outcome = RuntimeError(f"load generator failed: {error!r}")
    with contextlib.suppress(OSError):  # the driver may have gone already
        connection.send(outcome)
    connection.close()


class LoadGenerator:
    def __init__(self, url: str, payloads: list[Payload]) -> None:
        _check_loopback(url)
        if not payloads:
            raise ValueError("no payloads")
        self._url = url
        self._payloads = payloads
        self._context = multiprocessing.get_context("spawn")

    def run_level(self, concurrency: int, warmup_s: float, duration_s: float) -> LevelResult:
        """A closed loop of `concurrency` workers."""
        return self.run(LoadSpec(warmup_s, duration_s, concurrency=concurrency))

    def run_rate(self, rate_per_s: float, warmup_s: float, duration_s: float,
                 seed: int = 0) -> LevelResult:
        """An open loop: Poisson arrivals at `rate_per_s` listings per second."""
        return self.run(LoadSpec(warmup_s, duration_s, rate_per_s=rate_per_s, seed=seed))

    def run_soak(self, rate_per_s: float, warmup_s: float, duration_s: float,
                 bucket_s: float, seed: int = 0) -> LevelResult:
        """A long open loop whose result also has its figures per bucket of `bucket_s`."""
        return self.run(LoadSpec(warmup_s, duration_s, rate_per_s=rate_per_s, seed=seed,
                                 bucket_s=bucket_s))

    def run(self, spec: LoadSpec) -> LevelResult:
        logger.info("load: %s, %.0f s warm-up + %.0f s measured",
                    spec.name, spec.warmup_s, spec.duration_s)
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_level_process, args=(sender, self._url, self._payloads, spec),
            name="loadgen", daemon=True,
        )
        process.start()
        sender.close()
        finished = False
        # Every request ends by its own timeout (closed loop) or the drain (open loop).
        bound_s = (spec.warmup_s + spec.duration_s + REQUEST_TIMEOUT_S + OPEN_LOOP_DRAIN_S
                   + RESULT_GRACE_S)
        try:
            if not receiver.poll(bound_s):
                raise TimeoutError(f"load generator at {spec.name} did not finish")
            outcome = receiver.recv()
            finished = True
        except EOFError as error:
            raise RuntimeError(f"load generator exited with {process.exitcode}") from error
        finally:
            receiver.close()
            if not finished:  # interrupted or failed: no reason to let the level run on
                process.terminate()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
