"""Admission control for the ingress: an adaptive limit on the images in flight per replica.

Without a bound, load past capacity only lengthens the queues: every listing waits behind all
the others and latency grows without limit (Little's law), although throughput does not. With
one, the listings that would have queued get a fast 429 and a Retry-After instead, and those
admitted keep their latency.

The limit is not a fixed number, because capacity is not: it grows with the model replicas the
autoscaler adds and shrinks on a busy host. Nor can it aim at an absolute latency alone: a host
whose single image already takes 430 ms would shed its second client against a 500 ms target,
and one that answers in 40 ms would let 12x its no-load latency queue up before shedding. So the
limit follows the *gradient*, the ratio of recent latency to the no-load latency this replica
has measured, as TCP Vegas and Netflix's Gradient2 limiter do:

- The no-load latency is learnt per listing size (images in powers of two, because a listing of
  eight takes longer than one of one with no queue at all), and it is a lower quartile, never the
  fastest answer. The images of one size are not alike: on the 2-core host the benchmark's
  photos (120 to 1000 px) take 11 to 125 ms with no queue at all, so the fastest answer is the
  smallest photo, and a typical one read 3x against it, past the tolerance: the limit sat at its
  floor from four clients up, shedding at 66 ms (the trace is replayed in the tests). It is the
  lower quartile of the last 27 answers to listings admitted alone (nothing else in flight in
  this replica from admission to answer), once there are nine of them, following them both
  ways: none of them can have queued behind another listing, so a host that got slower is
  re-learnt, and answers under load, however long they go on, never are. A replica that has not
  yet had nine such answers (it started under load) has only its other answers: the quartile of
  its first nine, lowered by that of a full window of 64 (an answer under load takes at least
  its no-load latency) and raised only slowly (doubling in `baseline_rise_s`), by answers
  admitted with the limit mostly unused or at its floor.
- The short window is the lower quartile of the ratios of the last nine answers under load
  (each answer to its size's no-load latency). Single answers spread widely above the no-load
  quartile (the large photos take 3-4x the typical one), so a median ratio reads spread as
  queueing; a queue, though, delays every answer, and the lower quartile rises with it. Up to
  `1 + (tolerance - 1) / 2` the queues are short and the limit grows: by one per image until the
  first sign of queueing (slow start, about x1.5 per round trip), then by one per round trip;
  below nine images, more slowly, since a round trip then gives the quartile too few answers to
  see the queue a step made. Between that and `tolerance` it holds. Past `tolerance` it is cut,
  at most once per round trip, in proportion (tolerance / ratio), by half at most. A quartile and
  a tolerance of 2x mean that ordinary variation and one slow image never shed.
- `latency_target_ms` is the operator's ceiling: a median latency under load above it, with any
  queue, cuts the limit whatever the tolerance allows (to target / latency, between
  `backoff_ratio` and half), and the limit never grows above it. A host slower than the ceiling
  with no queue at all is not cut: refusing its clients would make nothing faster.
- `min_limit` (2) is a floor: the limit never drops below it, and fewer listings than it in
  flight always admit one more, whatever their size, so a second client is never refused,
  however slow the host.
- After a quiet spell (`quiet_round_trips` with no admission that used half the limit) the limit
  is unvalidated, as a TCP congestion window is after an application-limited period (RFC 7661):
  it decays halfway towards the most images that were in flight meanwhile, once per spell, and
  the answers to listings admitted alone before the spell are dropped, so that the no-load
  latencies are re-learnt from the next nine (a trickle's during the spell, or the first quiet
  moment's after it; until then they are kept, not re-learnt from a load step's queue). A load
  step therefore meets a limit the host has recently shown it can carry, not one learnt before
  the autoscaler removed replicas, and slow start finds the rest within a few round trips.

Only answers to listings admitted with the limit at least half in use move the limit: a slow
answer with the limit mostly unused (the first listing after a start, one slow image) says
nothing about queues, and a fast one says nothing about capacity.

The limit counts images, not listings, because images are what the stages work on. A listing is
admitted while the images in flight are below the limit, whatever its own size: it may take them
past the limit, and the latency it causes feeds back like any other. Requiring room for the
whole listing instead would starve listings with many images under sustained load, since the
one-image listings would always fit first.

Autoscaling still sees demand: at the limit, the stage deployments hold about a round trip's
worth of queued work, which is above their `target_ongoing_requests` when those are set below
throughput x latency (graphs/serve_config.yaml).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curator.contracts.errors import CuratorError

DEEPEST_CUT = 0.5  # the most one round trip of slow answers can take off the limit
SHORT_WINDOW = 9  # answers under load whose latency ratios' lower quartile is the gradient
MIN_SAMPLES_TO_CUT = 3  # one or two answers are an anecdote, not a queue
# The no-load latency of a size class: the lower quartile of its last ALONE_WINDOW answers to
# listings admitted alone, once there are LEARNT_AFTER of them; until then, of its answers of
# any kind, lowered only by a full ANY_WINDOW (long enough that its quartile does not dip to a
# chance run of small photos, as a minimum over short windows would).
ALONE_WINDOW = 27
LEARNT_AFTER = SHORT_WINDOW
ANY_WINDOW = 64


class AdmissionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # The operator's ceiling (ms, in the ingress): a median listing latency under load above it,
    # with a queue, cuts the limit whatever the tolerance allows. Half the latency objective
    # (1 s): the median held here leaves the p99 near 1 s.
    latency_target_ms: float = Field(500.0, gt=0)
    # Recent latency up to this multiple of the no-load latency is ordinary variation; beyond
    # it, queueing that the limit cuts.
    tolerance: float = Field(2.0, gt=1)
    initial_limit: int = Field(16, ge=1)
    # The floor, in images for the limit and in listings for admission: with 2, a second
    # listing is admitted whatever its size and however slow the host.
    min_limit: int = Field(2, ge=1)
    max_limit: int = Field(4096, ge=1)
    backoff_ratio: float = Field(0.75, gt=0, lt=1)  # the mildest cut for the ceiling
    # Round trips without an admission that used half the limit before it decays (RFC 7661).
    quiet_round_trips: int = Field(20, ge=1)
    # Time for the no-load latency to double, on a replica that has not had listings admitted
    # alone to learn it from (it started under load), from answers with the limit mostly
    # unused, or at its floor, that never come faster.
    baseline_rise_s: float = Field(300.0, gt=0)
    # Told to refused clients (Retry-After, whole seconds as HTTP requires).
    retry_after_s: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _limits_ordered(self) -> AdmissionSettings:
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise ValueError("admission limits need min_limit <= initial_limit <= max_limit")
        return self


class Overloaded(CuratorError):
    """The replica is at its admission limit; the client should retry after `retry_after_s`."""

    status = 429
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}

    def __reduce__(self) -> tuple[object, ...]:
        return (Overloaded, (self.message, self.retry_after_s))


@dataclass
class _Permit:
    images: int
    epoch: int  # the limiter's epoch at admission: cuts after it make this sample stale
    saturated: bool  # the limit was in use (half or more) when this listing was admitted
    # Admitted with nothing else in flight: the admissions counted then. Alone throughout if
    # none has come since it was answered.
    alone_at: int | None = None


def size_class(images: int) -> int:
    """Listings of 1, 2-3, 4-7, ... images share a no-load latency."""
    return max(1, images).bit_length()


def lower_quartile(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 4]


class NoLoadLatency:
    """The latency a listing of each size class takes with no queue: the lower quartile of the
    class's last `ALONE_WINDOW` answers to listings admitted alone (nothing else in flight in
    this replica from admission to answer), once there are `LEARNT_AFTER` of them. It follows
    them both ways, since none of them can have queued behind another listing.

    Never the fastest single answer: the images of a size class are not alike (a 120 px photo
    takes a tenth of the time of a 1000 px one), so the fastest answer is the smallest photo,
    not the host without a queue; and a minimum over many short windows drifts down the same
    way, whenever a window happens to hold several small photos.

    Until then (a replica that started under load and has had no quiet moment since), answers
    of any kind are all there is: the quartile of the first `LEARNT_AFTER` sets it; from then on
    only the quartile of a full `ANY_WINDOW` lowers it (an answer under load takes at least its
    no-load latency), and answers admitted with the limit mostly unused (or at its floor) raise
    it slowly (doubling in `rise_s`). A quiet spell drops the answers admitted alone before it
    (`mark_stale`), so that a host that got slower meanwhile is re-learnt from the next ones."""

    def __init__(self, rise_s: float) -> None:
        self.rise_per_s = math.log(2) / rise_s
        self._seconds: dict[int, float] = {}
        self._updated: dict[int, float] = {}
        self._any: dict[int, deque[float]] = {}  # latencies
        self._alone: dict[int, deque[tuple[float, float]]] = {}  # (admitted at, latency)
        self._founded: set[int] = set()  # classes learnt from listings admitted alone

    def get(self, size: int) -> float | None:
        return self._seconds.get(size)

    def observe(self, size: int, latency_s: float, now: float, under_load: bool,
                alone: bool) -> None:
        answers = self._any.setdefault(size, deque(maxlen=ANY_WINDOW))
        answers.append(latency_s)
        alone_answers = self._alone.setdefault(size, deque(maxlen=ALONE_WINDOW))
        if alone:
            alone_answers.append((now - latency_s, latency_s))
        known = self._seconds.get(size)
        if len(alone_answers) >= LEARNT_AFTER:
            self._seconds[size] = lower_quartile(latency for _, latency in alone_answers)
            self._founded.add(size)
        elif size in self._founded:
            pass  # a quiet spell dropped the answers admitted alone: kept until new ones come
        elif known is None or len(answers) < LEARNT_AFTER:
            self._seconds[size] = lower_quartile(answers)
        elif (quartile := lower_quartile(answers)) < known:
            if len(answers) == ANY_WINDOW:
                self._seconds[size] = quartile
        elif not under_load:
            allowed = known * math.exp(self.rise_per_s * max(0.0, now - self._updated[size]))
            self._seconds[size] = min(quartile, allowed)
        # Time under load does not count towards a rise either.
        self._updated[size] = now

    def shortest(self) -> float | None:
        return min(self._seconds.values(), default=None)

    def mark_stale(self, since: float) -> None:
        """Forget the answers to listings admitted alone at or before `since` (the last
        admission under load, before a quiet spell)."""
        for alone_answers in self._alone.values():
            while alone_answers and alone_answers[0][0] <= since:
                alone_answers.popleft()


class AdmissionLimiter:
    """Not thread-safe: one per ingress replica, used from its event loop only."""

    def __init__(self, settings: AdmissionSettings,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.settings = settings
        self._clock = clock
        self._limit = float(settings.initial_limit)
        self._in_flight = 0
        self._listings = 0
        self._epoch = 0
        self._slow_start = True
        self._no_load = NoLoadLatency(settings.baseline_rise_s)
        # Latency and its ratio to the no-load latency, answers under load in this epoch.
        self._recent: deque[tuple[float, float]] = deque(maxlen=SHORT_WINDOW)
        self._round_trip_s: float | None = None  # the last median latency seen
        self._busy_at = clock()  # last admission that used half the limit, or last spell's end
        self._last_busy = self._busy_at  # last admission that used half the limit
        self._high_water = 0  # most images in flight since then (the quiet spell's use)
        self.admitted = 0
        self.refused = 0

    def reconfigure(self, settings: AdmissionSettings) -> None:
        """New settings from user_config; the limit and the latencies learnt so far are kept,
        the limit within the new bounds, and so are the listings in flight."""
        self.settings = settings
        self._no_load.rise_per_s = math.log(2) / settings.baseline_rise_s
        self._limit = min(float(settings.max_limit), max(float(settings.min_limit), self._limit))

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def no_load_latency_s(self, images: int = 1) -> float | None:
        """What a listing of this many images takes with no queue, as learnt so far."""
        return self._no_load.get(size_class(images))

    def try_acquire(self, images: int) -> _Permit | None:
        if not self.settings.enabled:
            return _Permit(images, self._epoch, saturated=False)
        now = self._clock()
        self._decay_if_quiet(now)
        if self._in_flight >= self._limit and self._listings >= self.settings.min_limit:
            self.refused += 1
            return None
        saturated = self._in_flight + images >= self._limit / 2
        alone = self._in_flight == 0
        self._in_flight += images
        self._listings += 1
        if saturated:
            self._busy_at = self._last_busy = now
            self._high_water = 0
        else:
            self._high_water = max(self._high_water, self._in_flight)
        self.admitted += 1
        return _Permit(images, self._epoch, saturated, self.admitted if alone else None)

    def release(self, permit: _Permit, latency_s: float | None) -> None:
        """`latency_s` None: the listing failed, which says nothing about the queues."""
        if not self.settings.enabled:
            return
        self._in_flight -= permit.images
        self._listings -= 1
        if latency_s is None:
            return
        size = size_class(permit.images)
        no_load = self._no_load.get(size)
        # At the floor the limit cannot take a queue away: its answers are the least load this
        # replica can be under, and a no-load latency below them would only pin it there.
        at_floor = self._limit <= self.settings.min_limit
        self._no_load.observe(size, latency_s, self._clock(),
                              under_load=permit.saturated and not at_floor,
                              alone=permit.alone_at == self.admitted)
        if not permit.saturated or permit.epoch != self._epoch:
            # Admitted with the limit mostly unused: not a queue the limit let grow (a cold
            # start, a slow image). Admitted before the last cut: its queue is already paid for.
            return
        # The first answer of a size says nothing about queueing yet: ratio 1.
        self._recent.append((latency_s, latency_s / no_load if no_load else 1.0))
        self._adjust(permit.images)

    def _adjust(self, images: int) -> None:
        settings = self.settings
        round_trip = statistics.median(latency for latency, _ in self._recent)
        ratio = lower_quartile(ratio for _, ratio in self._recent)  # see the module doc
        grow_below = 1 + (settings.tolerance - 1) / 2
        enough = len(self._recent) >= MIN_SAMPLES_TO_CUT
        if enough:  # not the one answer after a cut: the quiet spells are measured in it
            self._round_trip_s = round_trip
        queueing = enough and ratio > settings.tolerance
        # Over the ceiling with some queue: whatever the tolerance allows. With none, a cut would
        # shed work the host has room for without making anything faster.
        over_ceiling = (enough and ratio > grow_below
                        and round_trip * 1000 > settings.latency_target_ms)
        if queueing or over_ceiling:
            # Little's law: at a given throughput the wait grows with what is in flight, so k
            # times the acceptable latency asks for 1/k of the limit; halving at most keeps a
            # burst from emptying it.
            factor = settings.tolerance / ratio if queueing else 1.0
            if over_ceiling:
                wanted = settings.latency_target_ms / (round_trip * 1000)
                factor = min(factor, settings.backoff_ratio, wanted)
            self._set_limit(self._limit * max(DEEPEST_CUT, factor))
            self._epoch += 1
            self._recent.clear()
            self._slow_start = False
        elif ratio <= grow_below:
            if round_trip * 1000 <= settings.latency_target_ms:  # room under the ceiling
                step = 1.0 if self._slow_start else 1.0 / self._limit
                # No faster than the short window can see: below SHORT_WINDOW images a round
                # trip is fewer answers than the median needs to show a new queue.
                pace = min(1.0, self._limit / SHORT_WINDOW)
                self._set_limit(self._limit + step * pace * images)
        else:
            self._slow_start = False  # queueing has begun: probe gently from here

    def _decay_if_quiet(self, now: float) -> None:
        round_trip = self._round_trip_s or self._no_load.shortest()
        if round_trip is None:
            return
        quiet_s = self.settings.quiet_round_trips * max(round_trip, 0.001)
        spells = int((now - self._busy_at) / quiet_s)
        if spells < 1:
            return
        # RFC 7661: an unused window is not a validated one. Halve the distance to what was
        # really in flight, once per quiet spell, and re-learn the no-load latency from the
        # listings admitted alone since the last admission under load (a trickle's), or next.
        target = max(float(self.settings.min_limit), float(self._high_water))
        if self._limit > target:
            self._set_limit(target + (self._limit - target) * 0.5 ** spells)
        self._busy_at += spells * quiet_s
        self._high_water = 0
        self._slow_start = True
        self._recent.clear()
        self._no_load.mark_stale(since=self._last_busy)

    def _set_limit(self, limit: float) -> None:
        settings = self.settings
        self._limit = min(float(settings.max_limit), max(float(settings.min_limit), limit))

    @asynccontextmanager
    async def admit(self, images: int) -> AsyncIterator[None]:
        """Holds `images` of the limit for the body of the `async with`; raises `Overloaded`
        when they do not fit. The body's duration is the latency sample, unless it raises."""
        permit = self.try_acquire(images)
        if permit is None:
            raise Overloaded(
                f"this replica is at its limit of {self.limit} images in flight; "
                f"retry after {self.settings.retry_after_s} s",
                self.settings.retry_after_s,
            )
        started = self._clock()
        latency_s: float | None = None
        try:
            yield
            latency_s = self._clock() - started
        finally:
            self.release(permit, latency_s)
