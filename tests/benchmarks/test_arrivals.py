"""Offered rates and Poisson arrivals of the open loop."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.arrivals import OfferedRate, parse_rates, poisson_arrivals


def test_parse_rates_fractions_and_absolute() -> None:
    assert parse_rates("0.5, 0.9,4/s") == [
        OfferedRate(0.5, False), OfferedRate(0.9, False), OfferedRate(4.0, True)]
    assert parse_rates("none") == []


@pytest.mark.parametrize("spec", ["0", "-1/s", "12", "fast"], ids=["zero", "negative",
                                                                     "huge-fraction", "word"])
def test_parse_rates_refuses(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_rates(spec)


def test_offered_rate_resolution() -> None:
    assert OfferedRate(0.8, False).per_s(5.0) == pytest.approx(4.0)
    assert OfferedRate(3.0, True).per_s(None) == 3.0
    with pytest.raises(ValueError, match="peak"):
        OfferedRate(0.8, False).per_s(None)


def test_poisson_arrivals_are_seeded_sorted_in_span_and_exact_in_count() -> None:
    arrivals = poisson_arrivals(50.0, 20.0, seed=3)
    assert arrivals == poisson_arrivals(50.0, 20.0, seed=3)
    assert arrivals != poisson_arrivals(50.0, 20.0, seed=4)
    assert arrivals == sorted(arrivals) and arrivals[0] >= 0 and arrivals[-1] < 20.0
    assert len(arrivals) == 1000
    gaps = np.diff(arrivals)
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.05)
    assert gaps.std() == pytest.approx(1 / 50.0, rel=0.15)  # bursty: sd ~ mean, as exponential


@pytest.mark.parametrize(("rate", "span", "count"), [(0.0, 10.0, 0), (5.1, 10.0, 51),
                                                      (3.0, 0.0, 0), (0.04, 10.0, 0)],
                         ids=["no-rate", "rounded", "no-span", "under-one"])
def test_poisson_arrivals_count(rate: float, span: float, count: int) -> None:
    assert len(poisson_arrivals(rate, span, seed=0)) == count
