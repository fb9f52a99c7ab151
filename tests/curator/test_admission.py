"""The ingress's adaptive admission limit (curator.core.admission).

The mechanics are tested directly; the behaviour on simulated hosts: a discrete-event model of a
replica (c workers serving images first come, first served, each image taking its service time
with some jitter, plus a fixed overhead per listing) under closed-loop clients that retry a 429
after its Retry-After, all on a simulated clock. Every figure asserted is simulated time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pytest
from pydantic import ValidationError

from curator.contracts.errors import CuratorError
from curator.core.admission import AdmissionLimiter, AdmissionSettings, Overloaded, size_class


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(**settings: object) -> AdmissionLimiter:
    return AdmissionLimiter(AdmissionSettings.model_validate(settings), clock=Clock())


# --- the simulated replica ------------------------------------------------------------------


@dataclass
class Phase:
    """From `start_s` on: `clients` closed-loop clients, on a host with `workers` workers."""

    start_s: float
    clients: int
    workers: int


@dataclass
class Answer:
    sent_s: float
    latency_s: float
    images: int


@dataclass
class _Listing:
    images: int
    admitted_s: float
    client: int
    permit: object
    left: int
    slow_factor: float = 1.0


@dataclass
class Simulation:
    """One ingress replica in front of `workers` identical workers (a model stage's replicas or
    cores), FIFO per image, driven by closed-loop clients; every time is simulated."""

    phases: list[Phase]
    service_s: float  # per image, with no queue
    settings: AdmissionSettings = field(default_factory=AdmissionSettings)
    jitter: float = 0.2  # service times uniform in service_s * (1 ± jitter)
    overhead_s: float = 0.02  # per listing, outside the queue (HTTP, preprocessing)
    images_per_listing: Callable[[random.Random], int] = lambda _: 1
    slow_listings: dict[int, float] = field(default_factory=dict)  # nth sent: x service time
    # Each listing's service time times one of these, drawn at random: photos of mixed sizes.
    photos: tuple[float, ...] = ()
    seed: int = 7

    def __post_init__(self) -> None:
        self.now = 0.0
        self.rng = random.Random(self.seed)
        self.limiter = AdmissionLimiter(self.settings, clock=lambda: self.now)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._waiting: deque[_Listing] = deque()
        self._busy = 0
        self._workers = 0
        self._clients = 0
        self._running: set[int] = set()
        self._sent = 0
        self.answers: list[Answer] = []
        self.refusals: list[float] = []
        self.limits: list[tuple[float, int]] = []

    def run(self, until_s: float) -> Simulation:
        for phase in self.phases:
            self._at(phase.start_s, partial(self._enter, phase))
        while self._events and self._events[0][0] <= until_s:
            self.now, _, action = heapq.heappop(self._events)
            action()
            self.limits.append((self.now, self.limiter.limit))
        return self

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def _enter(self, phase: Phase) -> None:
        self._clients, self._workers = phase.clients, phase.workers
        for client in range(phase.clients):
            if client not in self._running:
                self._running.add(client)
                self._send(client, retries=0)
        self._start_work()

    def _send(self, client: int, retries: int) -> None:
        if client >= self._clients:  # this client's phase is over
            self._running.discard(client)
            return
        images = self.images_per_listing(self.rng)
        permit = self.limiter.try_acquire(images)
        if permit is None:
            self.refusals.append(self.now)
            # A well-behaved client: Retry-After, doubled per refusal in a row, jittered.
            wait = min(8.0, self.settings.retry_after_s * 2 ** retries)
            self._at(self.now + wait * self.rng.uniform(0.5, 1.5),
                     lambda: self._send(client, retries + 1))
            return
        factor = self.slow_listings.get(self._sent, 1.0)
        if self.photos:
            factor *= self.rng.choice(self.photos)
        listing = _Listing(images, self.now, client, permit, images, factor)
        self._sent += 1
        self._waiting.extend([listing] * images)
        self._start_work()

    def _start_work(self) -> None:
        while self._waiting and self._busy < self._workers:
            listing = self._waiting.popleft()
            self._busy += 1
            took = self.service_s * listing.slow_factor * self.rng.uniform(
                1 - self.jitter, 1 + self.jitter)
            self._at(self.now + took, partial(self._image_done, listing))

    def _image_done(self, listing: _Listing) -> None:
        self._busy -= 1
        listing.left -= 1
        if listing.left == 0:
            self._at(self.now + self.overhead_s, lambda: self._answered(listing))
        self._start_work()

    def _answered(self, listing: _Listing) -> None:
        latency = self.now - listing.admitted_s
        self.limiter.release(listing.permit, latency)  # type: ignore[arg-type]
        self.answers.append(Answer(listing.admitted_s, latency, listing.images))
        self._send(listing.client, retries=0)

    # Figures over a window of simulated time.

    def latencies(self, start_s: float, end_s: float) -> np.ndarray:
        return np.array([a.latency_s for a in self.answers if start_s <= a.sent_s < end_s])

    def shed(self, start_s: float, end_s: float) -> int:
        return sum(start_s <= t < end_s for t in self.refusals)

    def images_per_s(self, start_s: float, end_s: float) -> float:
        done = sum(a.images for a in self.answers if start_s <= a.sent_s + a.latency_s < end_s)
        return done / (end_s - start_s)

    def limit_range(self, start_s: float, end_s: float) -> tuple[int, int]:
        limits = [limit for t, limit in self.limits if start_s <= t < end_s]
        return min(limits), max(limits)


def p(latencies: np.ndarray, q: float) -> float:
    return float(np.percentile(latencies, q))


def capacity(workers: int, service_s: float) -> float:
    return workers / service_s


# --- behaviour on simulated hosts -----------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 11])
def test_a_slow_host_never_sheds_two_clients_and_holds_latency_under_load(seed: int) -> None:
    # The host of issue 11: 430 ms an image, two workers. The old limiter aimed at 500 ms
    # absolute and shed the second client.
    sim = Simulation([Phase(0, 1, 2), Phase(60, 2, 2), Phase(120, 16, 2)], 0.43,
                     seed=seed).run(240)
    assert sim.shed(0, 120) == 0
    no_load = p(sim.latencies(0, 60), 50)
    peak = capacity(2, 0.43)
    # Sixteen clients: the limit holds the queue near the 500 ms ceiling where an unbounded
    # one would hold them all (16 / 4.65 per s = 3.4 s), and the workers stay busy.
    loaded = sim.latencies(150, 240)
    assert sim.images_per_s(150, 240) >= 0.9 * peak
    # (The gradient reads the fastest answers, so it lets the median sit a little over the
    # ceiling before the ceiling's own median check cuts.)
    assert p(loaded, 50) <= 0.65
    assert p(loaded, 99) <= 0.4 * 16 / peak
    assert sim.limit_range(150, 240)[1] <= 6
    assert no_load < 0.5  # the figures above are not a host with no ceiling problem


def test_two_clients_are_never_shed_whatever_their_listing_sizes() -> None:
    # Listings of 1 to 8 images on the slow host: an eight-image listing alone fills more than
    # the limit an overloaded host keeps, yet a second client still gets in.
    def sizes(rng: random.Random) -> int:
        return rng.choice([1, 1, 1, 2, 3, 5, 8])

    sim = Simulation([Phase(0, 1, 2), Phase(60, 2, 2), Phase(120, 16, 2), Phase(240, 2, 2)],
                     0.43, images_per_listing=sizes).run(360)
    assert sim.shed(0, 120) == 0
    assert sim.shed(120, 240) > 0  # sixteen clients are shed, down to the floor
    assert sim.shed(250, 360) == 0
    assert sim.limit_range(200, 240)[0] == AdmissionSettings().min_limit


def test_without_the_ceiling_the_gradient_alone_holds_latency_near_tolerance() -> None:
    settings = AdmissionSettings(latency_target_ms=1e6)
    sim = Simulation([Phase(0, 1, 2), Phase(60, 16, 2)], 0.43, settings).run(180)
    no_load = p(sim.latencies(0, 60), 50)
    loaded = sim.latencies(90, 180)
    assert sim.shed(0, 60) == 0
    assert sim.images_per_s(90, 180) >= 0.95 * capacity(2, 0.43)
    assert p(loaded, 50) <= settings.tolerance * 1.1 * no_load
    assert p(loaded, 99) <= 3.5 * no_load


@pytest.mark.parametrize("seed", [7, 11])
def test_a_fast_host_keeps_its_queues_short_far_below_the_ceiling(seed: int) -> None:
    # 40 ms an image: an absolute 500 ms target would let 12x the no-load latency queue.
    sim = Simulation([Phase(0, 1, 2), Phase(30, 2, 2), Phase(60, 64, 2)], 0.04,
                     seed=seed).run(180)
    assert sim.shed(0, 60) == 0
    no_load = p(sim.latencies(0, 30), 50)
    loaded = sim.latencies(70, 180)
    assert sim.images_per_s(70, 180) >= 0.95 * capacity(2, 0.04)
    assert p(loaded, 50) <= 2.2 * no_load
    assert p(loaded, 99) <= 3 * no_load < 0.5


def test_a_sixteen_worker_host_takes_sixteen_clients_and_its_peak() -> None:
    sim = Simulation([Phase(0, 1, 16), Phase(30, 16, 16), Phase(120, 64, 16)], 0.43).run(240)
    assert sim.shed(0, 30) == 0
    # From a limit decayed to what one client used, slow start finds room for sixteen within
    # a few round trips: a few refusals at the step, then none.
    answered = len(sim.latencies(30, 120))
    assert sim.shed(30, 120) <= 0.02 * answered
    assert sim.shed(45, 120) == 0
    assert p(sim.latencies(45, 120), 99) <= 0.55  # no queue: service time and jitter
    assert sim.images_per_s(150, 240) >= 0.85 * capacity(16, 0.43)


def _load_step(quiet_round_trips: int) -> Simulation:
    # Sixty seconds of heavy load on sixteen workers grow the limit; a quiet minute follows, in
    # which the autoscaler takes fourteen of them away; then the load returns.
    settings = AdmissionSettings(quiet_round_trips=quiet_round_trips)
    return Simulation([Phase(0, 64, 16), Phase(60, 1, 2), Phase(180, 64, 2)], 0.1,
                      settings).run(300)


def test_a_load_step_after_a_quiet_spell_meets_a_decayed_limit() -> None:
    sim = _load_step(quiet_round_trips=20)
    stale = _load_step(quiet_round_trips=10**6)  # no decay: the limit learnt before the spell
    assert sim.limit_range(0, 60)[1] >= 20
    limit_before_step = [limit for t, limit in sim.limits if t < 180][-1]
    assert limit_before_step <= 4
    assert [limit for t, limit in stale.limits if t < 180][-1] >= 15
    # The step's first seconds: a bounded burst of slow answers, far below the stale limit's.
    step, stale_step = sim.latencies(180, 185), stale.latencies(180, 185)
    assert step.max() <= 0.6  # five no-load latencies
    assert step.max() <= 0.6 * stale_step.max()
    assert (stale_step > 0.6).sum() >= 15
    # Then it settles at the smaller host's capacity, with short queues.
    assert sim.images_per_s(200, 300) >= 0.95 * capacity(2, 0.1)
    assert p(sim.latencies(200, 300), 99) <= 0.4


def test_a_slow_single_image_changes_nothing() -> None:
    # One listing in a steady trickle takes ten times as long (a huge image, a cold cache).
    quiet = Simulation([Phase(0, 1, 2)], 0.43).run(120)
    slow = Simulation([Phase(0, 1, 2)], 0.43, slow_listings={100: 10.0}).run(120)
    slow_answer = max(slow.answers, key=lambda answer: answer.latency_s)
    assert slow_answer.latency_s > 3.0
    assert slow.shed(0, 120) == quiet.shed(0, 120) == 0
    before = [limit for t, limit in slow.limits if t < slow_answer.sent_s]
    after = [limit for t, limit in slow.limits if t > slow_answer.sent_s + slow_answer.latency_s]
    assert max(after[:20]) <= max(before[-20:])
    assert slow.limiter.no_load_latency_s() == pytest.approx(
        quiet.limiter.no_load_latency_s(), rel=0.15)


def test_one_slow_answer_under_load_does_not_cut_the_limit() -> None:
    # The short window's lower quartile: one outlier among answers under load is not a queue.
    admission = limiter(initial_limit=8, latency_target_ms=1000)
    for latency_s in [0.1] * 6 + [0.9] + [0.1] * 3:
        permits = [admission.try_acquire(1) for _ in range(4)]
        for permit in permits:
            assert permit is not None
            admission.release(permit, latency_s)
    assert admission.limit >= 8


# --- photos of mixed sizes, as the real service gets them ----------------------------------

# Ingress latencies (ms) of one-image listings on the 2-core host, technical graph, one client
# at a time (make bench's c=1 level, traced per answer on 2026-12-04): the benchmark's 16
# dev-set photos in turn, 120 to 1000 px, JPEG and PNG. With no queue at all they spread from
# 11 ms (the two smallest) to 125 ms (the largest): the fastest answer is a small photo.
REAL_NO_LOAD_MS = (36, 125, 38, 30, 33, 81, 11, 13, 42, 25, 34, 28, 26, 43, 34, 36,
                   36, 119, 37, 28, 28, 85, 12, 13, 34, 26, 33, 26, 25, 51, 40, 35,
                   34, 120, 40, 38, 38, 100, 17, 13, 37, 35, 32, 27, 24, 46, 30, 36)
# The same spread as factors of a typical photo's service time.
PHOTOS = tuple(ms / float(np.median(REAL_NO_LOAD_MS)) for ms in REAL_NO_LOAD_MS[:16])


def _replay(admission: AdmissionLimiter, clock: Clock, clients: int, until_s: float,
            stretch: float = 1.0) -> int:
    """`clients` closed-loop clients from `clock.now` to `until_s`, every listing answered in
    the next of REAL_NO_LOAD_MS (in turn) times `stretch`; a refused client comes back a second
    later. Returns the refusals."""
    latencies = itertools.cycle(REAL_NO_LOAD_MS)
    order = itertools.count()
    events: list[tuple[float, int, object, float]] = [
        (clock.now, next(order), None, 0.0) for _ in range(clients)]
    refused = 0
    while events:
        clock.now, _, permit, latency_s = heapq.heappop(events)
        if permit is not None:
            admission.release(permit, latency_s)  # type: ignore[arg-type]
        if clock.now >= until_s:
            continue
        permit = admission.try_acquire(1)
        if permit is None:
            refused += 1
            heapq.heappush(events, (clock.now + 1.0, next(order), None, 0.0))
            continue
        latency_s = next(latencies) / 1000 * stretch
        heapq.heappush(events, (clock.now + latency_s, next(order), permit, latency_s))
    return refused


def test_the_real_services_photos_with_no_queue_are_not_read_as_queueing() -> None:
    # The defect: the no-load latency was the fastest answer (11 ms, the smallest photo), so
    # a typical photo with no queue read as 3x, past the tolerance; from four clients up the
    # limit sat at its floor of 2 and shed at 66 ms. Replayed here: four clients whose answers
    # take exactly what one client's did (a host with room for them) were refused 20 times.
    clock = Clock()
    admission = AdmissionLimiter(AdmissionSettings(latency_target_ms=500), clock=clock)
    assert _replay(admission, clock, 1, 10.0) == 0
    no_load = admission.no_load_latency_s()
    assert no_load is not None
    assert 0.024 <= no_load <= 0.032  # a lower quartile of the photos, not the smallest
    assert _replay(admission, clock, 2, 20.0) == 0
    assert _replay(admission, clock, 4, 30.0) == 0
    assert admission.limit >= 4
    # Sixteen clients whose answers take eight times as long: a queue, still shed.
    assert _replay(admission, clock, 16, 40.0, stretch=8.0) > 0
    assert admission.limit <= 4


@pytest.mark.parametrize("seed", [7, 11])
def test_photos_of_mixed_sizes_on_a_host_with_room_are_not_shed(seed: int) -> None:
    # Eight workers, photos spread like the dev set's: up to four clients never queue, and
    # sixteen or sixty-four get the host's throughput with short queues.
    sim = Simulation([Phase(0, 1, 8), Phase(30, 2, 8), Phase(60, 4, 8), Phase(90, 16, 8),
                      Phase(150, 64, 8)], 0.03, overhead_s=0.005, photos=PHOTOS,
                     seed=seed).run(210)
    assert sim.shed(0, 90) == 0
    assert sim.limit_range(75, 90)[0] >= 4
    peak = capacity(8, 0.03 * float(np.mean(PHOTOS)))
    no_load = p(sim.latencies(0, 30), 50)
    for start, end in [(105, 150), (165, 210)]:
        assert sim.images_per_s(start, end) >= 0.9 * peak
        assert p(sim.latencies(start, end), 50) <= 2.2 * no_load


# --- the mechanics --------------------------------------------------------------------------


def test_refuses_once_the_images_in_flight_reach_the_limit() -> None:
    admission = limiter(initial_limit=4)
    permits = [admission.try_acquire(2), admission.try_acquire(1)]
    assert all(permits) and admission.in_flight == 3
    # Below the limit: admitted whatever its size, even past the limit.
    big = admission.try_acquire(3)
    assert big is not None and admission.in_flight == 6
    assert admission.try_acquire(1) is None
    assert (admission.admitted, admission.refused) == (3, 1)
    admission.release(big, None)  # a failed listing frees its images, and is no sample
    assert admission.in_flight == 3 and admission.limit == 4
    assert admission.try_acquire(1) is not None


def test_below_min_limit_listings_one_more_is_admitted_whatever_its_size() -> None:
    admission = limiter(initial_limit=2, min_limit=2)
    first = admission.try_acquire(8)
    second = admission.try_acquire(8)  # 8 images in flight, limit 2: yet only one listing
    assert first is not None and second is not None
    assert admission.try_acquire(1) is None
    admission.release(first, None)
    assert admission.try_acquire(1) is not None


def test_a_listing_with_many_images_is_not_starved_by_small_ones() -> None:
    admission = limiter(initial_limit=4)
    small = [admission.try_acquire(1) for _ in range(3)]
    large = admission.try_acquire(10)  # fits as soon as one image of room is left
    assert large is not None and admission.in_flight == 13
    assert admission.try_acquire(1) is None
    for permit in [*small, large]:
        assert permit is not None
        admission.release(permit, 0.1)
    assert admission.in_flight == 0


def _round_trip(admission: AdmissionLimiter, latency_s: float, images: int = 1) -> None:
    """Fill the limit, then answer every listing in `latency_s`."""
    permits = [admission.try_acquire(images) for _ in range(-(-admission.limit // images))]
    for permit in permits:
        assert permit is not None
        admission.release(permit, latency_s)


def test_fast_answers_under_load_grow_the_limit_slow_start_then_additively() -> None:
    admission = limiter(initial_limit=10, latency_target_ms=10_000)
    limits = [admission.limit]
    for _ in range(3):
        _round_trip(admission, 0.1)
        limits.append(admission.limit)
    # Slow start: +1 per answer at the no-load latency admitted with the limit at least half in
    # use, so each round trip multiplies the limit by about 1.5.
    assert limits == [10, 16, 25, 38]
    # Ten times the no-load latency: the deepest cut, once, when the lower quartile of the short
    # window turns (the seventh slow answer of nine; the six before it still grew the limit).
    _round_trip(admission, 1.0)
    assert admission.limit == (38 + 6) // 2
    # Then congestion avoidance: 1/limit per answer from the busier half, about +1 per two
    # round trips.
    limits = []
    for _ in range(4):
        _round_trip(admission, 0.1)
        limits.append(admission.limit)
    assert limits == [22, 23, 23, 24]


def test_growth_at_small_limits_waits_for_the_short_window() -> None:
    # Two images in flight make two answers a round trip; the short window needs nine to see a
    # queue that a step made, so even slow start adds one per few answers, not one per answer.
    admission = limiter(initial_limit=2, min_limit=2, latency_target_ms=10_000)
    limits = []
    for _ in range(4):
        permits = [admission.try_acquire(1) for _ in range(2)]
        for permit in permits:
            assert permit is not None
            admission.release(permit, 0.1)
        limits.append(admission.limit)
    assert limits == [2, 2, 3, 3]


def test_queueing_past_the_tolerance_cuts_in_proportion_once_per_round_trip() -> None:
    admission = limiter(initial_limit=40, max_limit=40, latency_target_ms=10_000, tolerance=2)
    _round_trip(admission, 0.1)  # learns the no-load latency; at max_limit already
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    _round_trip(admission, 0.3)  # three times: to 2/3
    assert admission.limit == 26
    _round_trip(admission, 0.3)  # admitted after the cut: their latency counts again
    assert admission.limit == 17
    _round_trip(admission, 1.0)  # ten times: halved at most
    assert admission.limit == 8


def test_latency_within_the_tolerance_holds_the_limit() -> None:
    admission = limiter(initial_limit=16, latency_target_ms=10_000, tolerance=2)
    _round_trip(admission, 0.1)
    learnt = admission.limit
    _round_trip(admission, 0.18)  # 1.8x: some queueing, ordinary for a busy host
    held = admission.limit
    for _ in range(5):
        _round_trip(admission, 0.18)
    assert admission.limit == held >= learnt


def test_the_ceiling_cuts_queues_the_tolerance_allows() -> None:
    admission = limiter(initial_limit=16, max_limit=16, latency_target_ms=500, tolerance=2,
                        backoff_ratio=0.75)
    _round_trip(admission, 0.3)
    _round_trip(admission, 0.55)  # 1.8x the no-load latency: tolerated, but over 500 ms
    assert admission.limit == 12


def test_no_cut_when_the_host_alone_is_slower_than_the_ceiling() -> None:
    # 600 ms with no queue at all: shedding cannot make that faster, only refuse clients.
    admission = limiter(initial_limit=8, latency_target_ms=500)
    for _ in range(5):
        _round_trip(admission, 0.6)
    assert admission.limit == 8  # and no growth either: no room under the ceiling


def test_each_listing_size_has_its_own_no_load_latency() -> None:
    admission = limiter(initial_limit=16, max_limit=16, latency_target_ms=10_000)
    _round_trip(admission, 0.1, images=1)
    _round_trip(admission, 0.4, images=8)  # eight images take longer with no queue
    assert admission.no_load_latency_s(8) == pytest.approx(0.4)
    assert admission.no_load_latency_s(12) == admission.no_load_latency_s(8)  # same class
    assert [size_class(n) for n in (1, 2, 3, 4, 7, 8)] == [1, 2, 2, 3, 3, 4]
    for _ in range(5):
        _round_trip(admission, 0.4, images=8)
        _round_trip(admission, 0.1, images=1)
    assert admission.limit == 16  # 4x a one-image listing, yet no queue: no cut


def test_a_quiet_spell_decays_the_limit_towards_what_was_used() -> None:
    clock = Clock()
    admission = AdmissionLimiter(AdmissionSettings(initial_limit=4, quiet_round_trips=10,
                                                   latency_target_ms=10_000), clock=clock)
    for _ in range(6):
        _round_trip(admission, 0.1)
    grown = admission.limit
    assert grown >= 30
    # A trickle of three listings at a time: the limit mostly unused, for two quiet spells
    # (10 round trips of 0.1 s each).
    for _ in range(21):
        clock.now += 0.1
        permits = [admission.try_acquire(1) for _ in range(3)]
        for permit in permits:
            assert permit is not None
            admission.release(permit, 0.1)
    # Halfway towards the three in flight, once per spell.
    assert admission.limit == int(3 + (grown - 3) / 4)
    assert admission.limit > 3
    # And slow start again: the limit regrows at once when the load returns.
    before = admission.limit
    _round_trip(admission, 0.1)
    assert admission.limit > before * 1.3


def test_a_stale_no_load_latency_is_relearnt_after_a_quiet_spell() -> None:
    clock = Clock()
    admission = AdmissionLimiter(AdmissionSettings(quiet_round_trips=10), clock=clock)
    _round_trip(admission, 0.1)
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    # The host got slower (fewer cores): 0.25 s with no queue. A minimum would keep 0.1 and
    # read the new normal as queueing; after a quiet spell, nine listings admitted alone (a
    # quartile's worth, and none can have queued behind another) set it.
    clock.now += 5.0
    for answered in range(1, 10):
        permit = admission.try_acquire(1)
        assert permit is not None
        clock.now += 0.25
        admission.release(permit, 0.25)
        expected = 0.25 if answered == 9 else 0.1  # fewer are too few for a quartile
        assert admission.no_load_latency_s() == pytest.approx(expected)


def test_a_load_step_after_a_quiet_spell_does_not_learn_its_queue() -> None:
    # The benchmark's levels: a second of nothing, then four clients at once. Their answers are
    # no-load latencies only if nothing else was in flight; the real service took the first one
    # (a large photo, 131 ms) for the host's, and the queue behind it for no queue.
    clock = Clock()
    admission = AdmissionLimiter(AdmissionSettings(quiet_round_trips=10,
                                                   latency_target_ms=10_000), clock=clock)
    for _ in range(3):
        _round_trip(admission, 0.1)
    clock.now += 5.0
    for _ in range(10):
        permits = [admission.try_acquire(1) for _ in range(4)]
        clock.now += 0.3
        for permit in permits:
            if permit is not None:
                admission.release(permit, 0.3)
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    assert admission.limit < 4  # three times the no-load latency: a queue, cut


def _alone(admission: AdmissionLimiter, clock: Clock, latency_s: float) -> None:
    """One listing admitted with nothing else in flight, answered before the next comes."""
    permit = admission.try_acquire(1)
    assert permit is not None
    clock.now += latency_s
    admission.release(permit, latency_s)


def test_listings_admitted_alone_set_the_no_load_latency_and_answers_under_load_never_do() -> None:
    clock = Clock()
    # A tolerance of 4: the limit holds, so the queue below stays a queue. No quiet spells.
    admission = AdmissionLimiter(AdmissionSettings(initial_limit=40, tolerance=4,
                                                   latency_target_ms=10_000,
                                                   quiet_round_trips=10**6),
                                 clock=clock)
    for _ in range(9):
        _alone(admission, clock, 0.1)
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    busy = [admission.try_acquire(1) for _ in range(20)]  # the limit stays in use
    for _ in range(30):  # 30 s of answers at 3x with the limit in use: that is a queue
        clock.now += 1.0
        permit = admission.try_acquire(1)
        assert permit is not None and permit.saturated
        admission.release(permit, 0.3)
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    for held in busy:
        assert held is not None
        admission.release(held, None)
    # Single listings at 3x, each alone: the host itself got slower, and within a window of
    # them their lower quartile says so (no queue can have delayed them).
    for _ in range(30):
        _alone(admission, clock, 0.3)
    assert admission.no_load_latency_s() == pytest.approx(0.3)
    for _ in range(30):
        _alone(admission, clock, 0.1)
    assert admission.no_load_latency_s() == pytest.approx(0.1)


def test_without_listings_admitted_alone_the_no_load_latency_rises_slowly() -> None:
    clock = Clock()
    admission = AdmissionLimiter(AdmissionSettings(initial_limit=40, baseline_rise_s=300,
                                                   tolerance=4, latency_target_ms=10_000,
                                                   quiet_round_trips=10**6),
                                 clock=clock)
    # One listing that never ends: nothing is ever admitted alone, as on a replica that is
    # never quiet.
    held = admission.try_acquire(1)
    permits = [admission.try_acquire(1) for _ in range(20)]
    for permit in permits:
        assert permit is not None
        admission.release(permit, 0.1)
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    busy = [admission.try_acquire(1) for _ in range(admission.limit * 3 // 4)]
    for _ in range(30):  # answers under load never raise it
        clock.now += 1.0
        permit = admission.try_acquire(1)
        assert permit is not None and permit.saturated
        admission.release(permit, 0.3)
    assert admission.no_load_latency_s() == pytest.approx(0.1)
    for permit in busy:
        assert permit is not None
        admission.release(permit, None)
    for _ in range(30):  # 30 s of answers at 3x with the limit mostly unused: slowly
        clock.now += 1.0
        permit = admission.try_acquire(1)
        assert permit is not None and not permit.saturated
        admission.release(permit, 0.3)
    risen = admission.no_load_latency_s()
    assert risen is not None and 0.1 < risen <= 0.1 * 2 ** (30 / 300) * (1 + 1e-9)
    assert held is not None


def test_fast_answers_while_idle_do_not_grow_the_limit() -> None:
    # A limit never used says nothing about capacity; growing it would only delay the cut.
    admission = limiter(initial_limit=16)
    for _ in range(100):
        permit = admission.try_acquire(1)
        assert permit is not None
        admission.release(permit, 0.01)
    assert admission.limit == 16


def test_the_limit_stays_within_its_bounds() -> None:
    admission = limiter(initial_limit=4, min_limit=2, max_limit=6, latency_target_ms=10_000)
    _round_trip(admission, 0.1)
    for _ in range(4):
        _round_trip(admission, 99.0)
    assert admission.limit == 2
    for _ in range(50):
        _round_trip(admission, 0.1)
    assert admission.limit == 6


def test_disabled_admits_everything() -> None:
    admission = limiter(enabled=False, initial_limit=1, min_limit=1)
    assert all(admission.try_acquire(5) for _ in range(100))
    assert admission.refused == 0


def test_reconfigure_keeps_the_learnt_limit_within_the_new_bounds() -> None:
    admission = limiter(initial_limit=40)
    permit = admission.try_acquire(3)
    admission.reconfigure(AdmissionSettings(initial_limit=8, max_limit=10))
    assert admission.limit == 10 and admission.in_flight == 3
    assert permit is not None
    admission.release(permit, None)
    assert admission.in_flight == 0


def test_settings_are_checked() -> None:
    assert AdmissionSettings().min_limit == 2  # a second client is never refused
    with pytest.raises(ValidationError, match="min_limit <= initial_limit <= max_limit"):
        AdmissionSettings(initial_limit=4, min_limit=8)
    with pytest.raises(ValidationError):
        AdmissionSettings(backoff_ratio=1.0)
    with pytest.raises(ValidationError):
        AdmissionSettings(tolerance=1.0)
    with pytest.raises(ValidationError):
        AdmissionSettings(surprise=True)  # type: ignore[call-arg]


def test_admit_times_the_body_and_raises_a_retryable_429() -> None:
    clock = Clock()
    admission = AdmissionLimiter(
        AdmissionSettings(initial_limit=1, min_limit=1, latency_target_ms=100, retry_after_s=3),
        clock=clock,
    )

    async def scenario() -> None:
        async with admission.admit(1):
            clock.now += 0.05
            with pytest.raises(Overloaded) as refused:
                async with admission.admit(1):
                    pass
            error = refused.value
            assert isinstance(error, CuratorError)
            assert (error.status, error.code) == (429, "overloaded")
            assert error.headers == {"Retry-After": "3"}
            assert "limit of 1 images" in error.message
        # Saturated with no queue: grows, by a ninth at so small a limit (one short window).
        assert admission.in_flight == 0 and admission.limit == 1
        assert admission.no_load_latency_s() == pytest.approx(0.05)

        with pytest.raises(RuntimeError):
            async with admission.admit(1):
                clock.now += 10.0
                raise RuntimeError("stage failed")
        assert admission.in_flight == 0 and admission.limit == 1  # a failure is no sample
        assert admission.no_load_latency_s() == pytest.approx(0.05)

    asyncio.run(scenario())
