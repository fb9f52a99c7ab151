"""Admission control for the ingress: an adaptive limit on the images in flight per replica.

Without a bound, load past capacity only lengthens the queues: every listing waits behind all
the others and latency grows without limit (Little's law), although throughput does not. With
one, the listings that would have queued past the latency target get a fast 429 and a
Retry-After instead, and those admitted keep their latency.

The limit is not a fixed number, because capacity is not: it grows with the model replicas the
autoscaler adds and shrinks on a busy host. It adapts like TCP congestion control (AIMD):

- a listing answered within `latency_target_ms` while the limit was at least half in use
  raises the limit, by one per listing until the first slow answer ("slow start": about x1.5
  per round trip, so a fresh replica finds a large cluster's capacity in a few), then by
  1/limit per listing (about one per two round trips);
- a slower answer, again with the limit at least half in use, cuts it, at most once per round
  trip, in proportion to how far it overshot (k times the target: to 1/k of the limit), by
  `backoff_ratio` at least and by half at most; the listings admitted before a cut took effect
  do not cut it again. A slow answer with the limit mostly unused (the first listing after a
  start, one slow image) says nothing about queues and changes nothing.

The limit counts images, not listings, because images are what the stages work on. A listing is
admitted while the images in flight are below the limit, whatever its own size: it may take them
past the limit, and the latency it causes feeds back like any other. Requiring room for the
whole listing instead would starve listings with many images under sustained load, since the
one-image listings would always fit first.

Autoscaling still sees demand: at the limit, the stage deployments hold about a latency
target's worth of queued work, which is above their `target_ongoing_requests` when those are
set below throughput x target (graphs/serve_config.yaml).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curator.errors import CuratorError

DEEPEST_CUT = 0.5  # the most one round trip of slow answers can take off the limit


class AdmissionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # A listing slower than this (ms, in the ingress) says the queues are too long. The limit
    # settles where about one listing in ten is slower, so the p99 lands near 1.5-2x this:
    # half the latency objective (1 s) is the default.
    latency_target_ms: float = Field(500.0, gt=0)
    initial_limit: int = Field(16, ge=1)
    min_limit: int = Field(1, ge=1)
    max_limit: int = Field(4096, ge=1)
    backoff_ratio: float = Field(0.75, gt=0, lt=1)
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


class AdmissionLimiter:
    """Not thread-safe: one per ingress replica, used from its event loop only."""

    def __init__(self, settings: AdmissionSettings,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.settings = settings
        self._clock = clock
        self._limit = float(settings.initial_limit)
        self._in_flight = 0
        self._epoch = 0
        self._slow_start = True
        self.admitted = 0
        self.refused = 0

    def reconfigure(self, settings: AdmissionSettings) -> None:
        """New settings from user_config; the limit learnt so far is kept, within the new
        bounds, and so are the listings in flight."""
        self.settings = settings
        self._limit = min(float(settings.max_limit), max(float(settings.min_limit), self._limit))

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self, images: int) -> _Permit | None:
        if not self.settings.enabled:
            return _Permit(images, self._epoch, saturated=False)
        if self._in_flight >= self._limit:
            self.refused += 1
            return None
        saturated = self._in_flight + images >= self._limit / 2
        self._in_flight += images
        self.admitted += 1
        return _Permit(images, self._epoch, saturated)

    def release(self, permit: _Permit, latency_s: float | None) -> None:
        """`latency_s` None: the listing failed, which says nothing about the queues."""
        if not self.settings.enabled:
            return
        self._in_flight -= permit.images
        if latency_s is None:
            return
        settings = self.settings
        if not permit.saturated:
            # Admitted with the limit less than half used: whatever its latency, it was not a
            # queue the limit let grow (a cold start, a slow image), so it moves nothing.
            return
        if latency_s * 1000 > settings.latency_target_ms:
            if permit.epoch == self._epoch:  # once per round trip
                # Little's law: at a given throughput the wait grows with what is in flight, so
                # a listing k times over the target asks for 1/k of the limit. Halving at most
                # keeps one outlier from emptying it; backoff_ratio is the mildest cut.
                wanted = settings.latency_target_ms / (latency_s * 1000)
                factor = min(settings.backoff_ratio, max(DEEPEST_CUT, wanted))
                self._limit = max(float(settings.min_limit), self._limit * factor)
                self._epoch += 1
                self._slow_start = False
        else:
            step = 1.0 if self._slow_start else 1.0 / self._limit
            self._limit = min(float(settings.max_limit), self._limit + step * permit.images)

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
