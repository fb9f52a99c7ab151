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


def test_refuses_only_what_does_not_fit() -> None:
    admission = limiter(initial_limit=4)
    permits = [admission.try_acquire(2), admission.try_acquire(2)]
    assert all(permits) and admission.in_flight == 4
    assert admission.try_acquire(1) is None
    assert (admission.admitted, admission.refused) == (2, 1)
    admission.release(permits[0], None)  # a failed listing frees its images, no sample
    assert admission.in_flight == 2 and admission.limit == 4
    assert admission.try_acquire(2) is not None


def test_a_listing_larger_than_the_limit_runs_when_nothing_else_does() -> None:
    admission = limiter(initial_limit=2, min_limit=1)
    big = admission.try_acquire(10)
    assert big is not None
    assert admission.try_acquire(1) is None
    admission.release(big, 0.1)
    assert admission.in_flight == 0


def test_slow_answers_cut_the_limit_once_per_round_trip() -> None:
    admission = limiter(initial_limit=20, latency_target_ms=500, backoff_ratio=0.5)
    permits = [admission.try_acquire(1) for _ in range(10)]
    for permit in permits:  # ten slow answers, all admitted before the first cut
        assert permit is not None
        admission.release(permit, 2.0)
    assert admission.limit == 10
    later = admission.try_acquire(1)  # admitted after the cut: its slowness counts again
    assert later is not None
    admission.release(later, 2.0)
    assert admission.limit == 5


def _round_trip(admission: AdmissionLimiter, latency_s: float) -> None:
    """Fill the limit, then answer every listing in `latency_s`."""
    permits = [admission.try_acquire(1) for _ in range(admission.limit)]
    for permit in permits:
        assert permit is not None
        admission.release(permit, latency_s)


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
    permit = admission.try_acquire(1)
    assert permit is not None
    admission.release(permit, 99.0)
    assert admission.limit == 2
    for _ in range(50):
        permits = [admission.try_acquire(1) for _ in range(admission.limit)]
        for permit in permits:
            assert permit is not None
            admission.release(permit, 0.0)
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
