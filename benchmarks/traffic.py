"""HTTP traffic to `POST /v1/assess` on loopback, as asyncio coroutines: the closed loop (`c`
workers, each sending its next listing when the last is answered) and the open loop (Poisson
arrivals, each sent when it is due, whatever is still in flight). Both return their `Sample`s and
the measured window; `benchmarks.samples` turns them into figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.arrivals import poisson_arrivals
from benchmarks.samples import REFUSED, UNFINISHED, Answer, Sample, parse_answer

REQUEST_TIMEOUT_S = 30.0  # as the serve config's http_options.request_timeout_s
ERROR_BACKOFF_S = 0.05  # after a connection error, so a dead server is not hammered in a loop
# A closed-loop worker refused with 429 waits Retry-After, doubled on each refusal in a row up to
# this many seconds, with jitter, as well-behaved clients do.
MAX_REFUSED_BACKOFF_S = 8.0
# Open loop: how long after the window the generator waits for requests still in flight.
# Whatever is unfinished then is recorded with the time it waited (a lower bound).
OPEN_LOOP_DRAIN_S = 10.0
START_DELAY_S = 0.05  # the open loop's first arrival is scheduled this far ahead
_HEADERS = {"Content-Type": "application/json"}

Window = tuple[float, float]


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


async def post_listing(
    session: aiohttp.ClientSession, endpoint: str, body: bytes, due: float
) -> Sample:
    started = time.perf_counter()
    answer = Answer()
    retry_after_s: float | None = None
    try:
        async with session.post(endpoint, data=body, headers=_HEADERS) as response:
            content = await response.read()
            status = str(response.status)
            if status == REFUSED:
                retry_after_s = float(response.headers.get("Retry-After", "1"))
        finished = time.perf_counter()
        if status == "200":
            answer = parse_answer(content)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        finished = time.perf_counter()
        status = f"client:{type(error).__name__}"
    return Sample(due, started, finished, status, answer, retry_after_s)


def refused_backoff_s(retry_after_s: float, refusals_in_a_row: int, rng: random.Random) -> float:
    """Retry-After, doubled per refusal in a row (capped), times a jitter of 0.5-1.5 so that the
    refused workers do not come back in step."""
    base = min(MAX_REFUSED_BACKOFF_S, retry_after_s * 2 ** (refusals_in_a_row - 1))
    return base * rng.uniform(0.5, 1.5)


def _session(connection_limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connection_limit),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


async def closed_loop(
    url: str, payloads: list[Payload], concurrency: int, warmup_s: float, duration_s: float
) -> tuple[list[Sample], Window]:
    endpoint = f"{url}/v1/assess"
    samples: list[Sample] = []
    async with _session(concurrency) as session:
        window_start = time.perf_counter() + warmup_s
        window_end = window_start + duration_s

        async def worker(worker_id: int) -> None:
            sequence = refusals = 0
            rng = random.Random(worker_id)
            while time.perf_counter() < window_end:
                payload = payloads[(worker_id + sequence * concurrency) % len(payloads)]
                body = payload.body(f"bench-c{concurrency}-w{worker_id}-{sequence}")
                sequence += 1
                sample = await post_listing(session, endpoint, body, time.perf_counter())
                samples.append(sample)
                if sample.status.startswith("client:"):
                    await asyncio.sleep(ERROR_BACKOFF_S)
                refusals = refusals + 1 if sample.status == REFUSED else 0
                if refusals:
                    backoff = refused_backoff_s(sample.retry_after_s or 1.0, refusals, rng)
                    await asyncio.sleep(min(backoff, max(0.0, window_end - time.perf_counter())))

        await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return samples, (window_start, window_end)


async def open_loop(
    url: str, payloads: list[Payload], rate_per_s: float, warmup_s: float, duration_s: float,
    seed: int = 0, drain_s: float = OPEN_LOOP_DRAIN_S,
) -> tuple[list[Sample], Window]:
    """Requests at Poisson arrivals of `rate_per_s` over warm-up + window; no connection limit,
    so a slow server meets its queue instead of the client quietly sending less."""
    endpoint = f"{url}/v1/assess"
    samples: list[Sample] = []
    # Warm-up and window drawn apart, so that the window gets exactly its share of arrivals.
    offsets = poisson_arrivals(rate_per_s, warmup_s, 2 * seed) + [
        warmup_s + offset for offset in poisson_arrivals(rate_per_s, duration_s, 2 * seed + 1)]
    async with _session(0) as session:
        origin = time.perf_counter() + START_DELAY_S
        window = (origin + warmup_s, origin + warmup_s + duration_s)

        async def one(index: int, due: float) -> None:
            payload = payloads[index % len(payloads)]
            try:
                samples.append(await post_listing(
                    session, endpoint, payload.body(f"bench-open-{rate_per_s:g}-{index}"), due))
            except asyncio.CancelledError:
                samples.append(Sample(due, due, time.perf_counter(), UNFINISHED))
                raise

        tasks = []
        for index, offset in enumerate(offsets):
            due = origin + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, due)))
        if tasks:
            remaining = max(0.0, window[1] + drain_s - time.perf_counter())
            _, pending = await asyncio.wait(tasks, timeout=remaining)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return samples, window
