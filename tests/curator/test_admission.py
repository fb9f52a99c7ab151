"""The ingress's adaptive admission limit (curator.admission), driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from curator.admission import AdmissionLimiter, AdmissionSettings, Overloaded
from curator.errors import CuratorError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(**settings: object) -> AdmissionLimiter:
    return AdmissionLimiter(AdmissionSettings.model_validate(settings))


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


def test_a_listing_with_many_images_is_not_starved_by_small_ones() -> None:
    admission = limiter(initial_limit=4, latency_target_ms=500)
    small = [admission.try_acquire(1) for _ in range(3)]
    large = admission.try_acquire(10)  # fits as soon as one image of room is left
    assert large is not None and admission.in_flight == 13
    assert admission.try_acquire(1) is None
    for permit in [*small, large]:
        assert permit is not None
        admission.release(permit, 0.1)
    assert admission.in_flight == 0


def _round_trip(admission: AdmissionLimiter, latency_s: float) -> None:
    """Fill the limit, then answer every listing in `latency_s`."""
    permits = [admission.try_acquire(1) for _ in range(admission.limit)]
    for permit in permits:
        assert permit is not None
        admission.release(permit, latency_s)


def test_slow_answers_cut_the_limit_once_per_round_trip() -> None:
    admission = limiter(initial_limit=20, latency_target_ms=500, backoff_ratio=0.5)
    _round_trip(admission, 2.0)  # eleven slow answers with the limit half used or more
    assert admission.limit == 10
    _round_trip(admission, 2.0)  # admitted after the cut: their slowness counts again
    assert admission.limit == 5


def test_the_cut_follows_how_far_the_answer_overshot() -> None:
    # Just over the target: the mild backoff_ratio; five times over: half, the deepest cut, so a
    # sudden jump in load converges in a few round trips rather than many.
    for latency_s, expected in ((0.55, 12), (0.8, 10), (2.5, 8)):
        admission = limiter(initial_limit=16, latency_target_ms=500, backoff_ratio=0.75)
        _round_trip(admission, latency_s)
        assert admission.limit == expected, latency_s


def test_a_slow_answer_with_the_limit_mostly_unused_changes_nothing() -> None:
    # The first listing after a start (models warming up), or one slow image: no queue the
    # limit let grow, so no reason to admit less.
    admission = limiter(initial_limit=16, latency_target_ms=500)
    for _ in range(3):
        permit = admission.try_acquire(2)
        assert permit is not None
        admission.release(permit, 5.0)
    assert admission.limit == 16


def test_fast_answers_under_load_grow_the_limit_slow_start_then_additively() -> None:
    admission = limiter(initial_limit=4, latency_target_ms=500, backoff_ratio=0.5)
    limits = [admission.limit]
    for _ in range(4):
        _round_trip(admission, 0.1)
        limits.append(admission.limit)
    # Slow start: +1 per fast answer admitted with the limit at least half in use, so each
    # round trip multiplies the limit by about 1.5.
    assert limits == [4, 7, 11, 17, 26]
    _round_trip(admission, 1.0)
    assert admission.limit == 13  # one cut by half for the whole round trip of slow answers
    # Then congestion avoidance: 1/limit per answer from the busier half, about +1 per two
    # round trips.
    for expected in (13, 14, 14, 15):
        _round_trip(admission, 0.1)
        assert admission.limit == expected


def test_fast_answers_while_idle_do_not_grow_the_limit() -> None:
    # A limit never used says nothing about capacity; growing it would only delay the cut.
    admission = limiter(initial_limit=16)
    for _ in range(100):
        permit = admission.try_acquire(1)
        assert permit is not None
        admission.release(permit, 0.01)
    assert admission.limit == 16


def test_the_limit_stays_within_its_bounds() -> None:
    admission = limiter(initial_limit=4, min_limit=2, max_limit=6, backoff_ratio=0.1)
    _round_trip(admission, 99.0)
    assert admission.limit == 2
    for _ in range(50):
        _round_trip(admission, 0.0)
    assert admission.limit == 6


def test_disabled_admits_everything() -> None:
    admission = limiter(enabled=False, initial_limit=1)
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
    with pytest.raises(ValidationError, match="min_limit <= initial_limit <= max_limit"):
        AdmissionSettings(initial_limit=4, min_limit=8)
    with pytest.raises(ValidationError):
        AdmissionSettings(backoff_ratio=1.0)
    with pytest.raises(ValidationError):
        AdmissionSettings(surprise=True)  # type: ignore[call-arg]


def test_admit_times_the_body_and_raises_a_retryable_429() -> None:
    clock = Clock()
    admission = AdmissionLimiter(
        AdmissionSettings(initial_limit=1, latency_target_ms=100, backoff_ratio=0.5,
                          retry_after_s=3),
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
        assert admission.in_flight == 0 and admission.limit == 2  # 50 ms: fast, and saturated

        with pytest.raises(RuntimeError):
            async with admission.admit(1):
                clock.now += 10.0
                raise RuntimeError("stage failed")
        assert admission.in_flight == 0 and admission.limit == 2  # a failure is no sample

    asyncio.run(scenario())
