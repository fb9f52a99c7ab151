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


def test_poisson_arrivals_are_seeded_sorted_and_in_span() -> None:
    arrivals = poisson_arrivals(50.0, 20.0, seed=3)
    assert arrivals == poisson_arrivals(50.0, 20.0, seed=3)
    assert arrivals == sorted(arrivals) and arrivals[0] > 0 and arrivals[-1] < 20.0
    # 1000 expected; a Poisson count's sd is sqrt(1000) ~ 32.
    assert 900 < len(arrivals) < 1100
    gaps = np.diff(arrivals)
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.1)
    assert gaps.std() == pytest.approx(1 / 50.0, rel=0.15)  # exponential: sd == mean


def test_poisson_arrivals_empty_for_no_rate() -> None:
    assert poisson_arrivals(0.0, 10.0, seed=0) == []
