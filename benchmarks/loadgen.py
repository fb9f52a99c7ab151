"""Closed-loop HTTP load from a separate process: `c` asyncio workers, each sending one-image
listings back to back to `POST /v1/assess` on loopback, for a warm-up then a measured window.

The generator runs in its own (spawned) process so that its event loop never shares a GIL with
the driver's sampler; on a 2-core host it still shares the CPUs with the service, and its CPU
time is reported so the reader can see how much of the machine the client took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import resource
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from benchmarks.stats import summarize_ms

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0  # as the serve config's http_options.request_timeout_s
ERROR_BACKOFF_S = 0.05  # after a connection error, so a dead server is not hammered in a loop
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Payload:
    """One image as the request needs it: JSON pieces around the listing id, built once."""

    image_id: str
    head: bytes  # '{"listing_id":"'
    tail: bytes  # '", ... "images":[{"image_id":..., "data":...}]}'

    @classmethod
    def build(cls, image_id: str, b64: str, category: str = "home",
              marketplace: str = "US") -> Payload:
        rest = json.dumps(
            {"category": category, "marketplace": marketplace,
             "images": [{"image_id": image_id, "data": b64}]},
            separators=(",", ":"),
        )
        return cls(image_id, b'{"listing_id":"', b'",' + rest[1:].encode())

    def body(self, listing_id: str) -> bytes:
        return self.head + listing_id.encode() + self.tail


@dataclass
class LevelResult:
    """One concurrency level, counted over requests that completed inside the measured window."""

    concurrency: int
    window_s: float
    listings: int  # completed in the window, any status
    images_ok: int  # images answered with status "ok" in a 200 response
    listings_per_s: float
    images_per_s: float  # images of 200 responses per second (one image per listing here)
    latency_ms: dict[str, float | None]  # of 200 responses
    status_counts: dict[str, int]  # "200", "503", "client:TimeoutError", ...
    errors_5xx: int
    errors_other: int  # 4xx and client-side failures (timeouts, refused connections)
    image_errors: int  # images with status "error" inside a 200 response
    sent_total: int  # all requests, warm-up and drain included
    client_cpu_s: float  # CPU seconds the load-generator process used for this level
    run_s: float  # wall seconds of the level: warm-up, window and drain
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Sample:
    started: float
    finished: float
    status: str
    images_ok: int
    image_errors: int


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the load generator only talks to loopback, not {host!r}")


async def _closed_loop(
    url: str, payloads: list[Payload], concurrency: int, warmup_s: float, duration_s: float
) -> tuple[list[_Sample], float, float]:
    endpoint = f"{url}/v1/assess"
    headers = {"Content-Type": "application/json"}
    samples: list[_Sample] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        window_start = time.perf_counter() + warmup_s
        window_end = window_start + duration_s

        async def worker(worker_id: int) -> None:
            sequence = 0
            while time.perf_counter() < window_end:
                payload = payloads[(worker_id + sequence * concurrency) % len(payloads)]
                body = payload.body(f"bench-c{concurrency}-w{worker_id}-{sequence}")
                sequence += 1
                started = time.perf_counter()
                ok = errors = 0
                try:
                    async with session.post(endpoint, data=body, headers=headers) as response:
                        content = await response.read()
                        status = str(response.status)
                    if status == "200":
                        for image in json.loads(content).get("images", []):
                            if image.get("status") == "ok":
                                ok += 1
                            else:
                                errors += 1
                except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                    status = f"client:{type(error).__name__}"
                samples.append(_Sample(started, time.perf_counter(), status, ok, errors))
                if status.startswith("client:"):
                    await asyncio.sleep(ERROR_BACKOFF_S)

        await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return samples, window_start, window_end


def _summarize(
    samples: list[_Sample], concurrency: int, window_start: float, window_end: float,
    client_cpu_s: float, run_s: float,
) -> LevelResult:
    window_s = window_end - window_start
    inside: list[_Sample] = []
    outside_5xx = 0  # 5xx during warm-up or drain must not hide behind the window
    for sample in samples:
        if window_start <= sample.finished <= window_end:
            inside.append(sample)
        elif sample.status.startswith("5"):
            outside_5xx += 1
    status_counts: dict[str, int] = {}
    for sample in inside:
        status_counts[sample.status] = status_counts.get(sample.status, 0) + 1
    succeeded = [s for s in inside if s.status == "200"]
    images_ok = sum(s.images_ok for s in succeeded)
    errors_5xx = sum(n for status, n in status_counts.items() if status.startswith("5"))
    errors_other = sum(
        n for status, n in status_counts.items() if status != "200" and not status.startswith("5")
    )
    return LevelResult(
        concurrency=concurrency,
        window_s=round(window_s, 2),
        listings=len(inside),
        images_ok=images_ok,
        listings_per_s=round(len(inside) / window_s, 2),
        images_per_s=round(images_ok / window_s, 2),
        latency_ms=summarize_ms([(s.finished - s.started) * 1000 for s in succeeded]),
        status_counts=dict(sorted(status_counts.items())),
        errors_5xx=errors_5xx,
        errors_other=errors_other,
        image_errors=sum(s.image_errors for s in succeeded),
        sent_total=len(samples),
        client_cpu_s=round(client_cpu_s, 2),
        run_s=round(run_s, 2),
        extra={"5xx_outside_window": outside_5xx} if outside_5xx else {},
    )


# --- the load-generator process --------------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _level_process(
    connection: Connection, url: str, payloads: list[Payload], concurrency: int,
    warmup_s: float, duration_s: float,
) -> None:
    outcome: LevelResult | Exception
    try:
        cpu_before, began = _cpu_s(), time.perf_counter()
        samples, start, end = asyncio.run(
            _closed_loop(url, payloads, concurrency, warmup_s, duration_s)
        )
        outcome = _summarize(samples, concurrency, start, end, _cpu_s() - cpu_before,
                             time.perf_counter() - began)
    except KeyboardInterrupt:
        return  # Ctrl-C reached the whole terminal group; the driver stops the run
    except Exception as error:  # the driver must hear why, not just see a dead process
        outcome = RuntimeError(f"load generator failed: {error!r}")
    with contextlib.suppress(OSError):  # the driver may have gone already
        connection.send(outcome)
    connection.close()


class LoadGenerator:
    """Runs each concurrency level in a fresh spawned process that gets the request bodies."""

    def __init__(self, url: str, payloads: list[Payload]) -> None:
        _check_loopback(url)
        if not payloads:
            raise ValueError("no payloads")
        self._url = url
        self._payloads = payloads
        self._context = multiprocessing.get_context("spawn")

    def run_level(self, concurrency: int, warmup_s: float, duration_s: float) -> LevelResult:
        logger.info("load: concurrency %d, %.0f s warm-up + %.0f s measured",
                    concurrency, warmup_s, duration_s)
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_level_process,
            args=(sender, self._url, self._payloads, concurrency, warmup_s, duration_s),
            name=f"loadgen-c{concurrency}", daemon=True,
        )
        process.start()
        sender.close()
        finished = False
        try:
            # Every request ends by its own timeout, so a level cannot outlast this bound.
            if not receiver.poll(warmup_s + duration_s + REQUEST_TIMEOUT_S + 60):
                raise TimeoutError(f"load generator at concurrency {concurrency} did not finish")
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
