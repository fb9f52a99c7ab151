"""The open loop's offered load: which rates (`--open-loop`), and when each request arrives.

Rates are given as fractions of the closed-loop peak ("0.8": 80% of the highest images/s the
closed loop measured, one image per listing) or as absolute listings per second ("4/s").
Arrivals are a Poisson process conditioned on its count (see `poisson_arrivals`), seeded so runs
compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_PEAK_FRACTION = 3.0  # beyond this a fraction is almost surely a rate missing its "/s"


@dataclass(frozen=True)
class OfferedRate:
    value: float
    absolute: bool  # True: listings/s; False: a fraction of the closed-loop peak

    def per_s(self, peak_per_s: float | None) -> float:
        """Listings per second to offer, given the closed-loop peak (images/s)."""
        if self.absolute:
            return self.value
        if not peak_per_s:
            raise ValueError(f"rate {self} is relative to a closed-loop peak, and there is none")
        return self.value * peak_per_s

    def __str__(self) -> str:
        return f"{self.value:g}/s" if self.absolute else f"{self.value:g} x peak"


def parse_rates(spec: str) -> list[OfferedRate]:
    """'0.5,0.7,0.8,0.9' (fractions of peak), '2/s,4.5/s' (absolute), mixed, or 'none'."""
    if spec.strip().lower() in ("", "none", "off"):
        return []
    rates = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        absolute = item.endswith("/s")
        value = float(item.removesuffix("/s"))
        if value <= 0:
            raise ValueError(f"open-loop rate {item!r} must be > 0")
        if not absolute and value > MAX_PEAK_FRACTION:
            raise ValueError(f"open-loop rate {item!r}: a fraction of the peak above "
                             f"{MAX_PEAK_FRACTION:g}; write '{item}/s' for listings per second")
        rates.append(OfferedRate(value, absolute))
    return rates


def poisson_arrivals(rate_per_s: float, span_s: float, seed: int) -> list[float]:
    """Arrival offsets in [0, span_s), seconds: a Poisson process of `rate_per_s` conditioned
    on its count, round(rate * span). Given the count, a Poisson process's arrivals are that
    many independent uniform points, sorted; the gaps stay as bursty as exponential ones, but a
    10 s window offers its nominal rate exactly (unconditioned, 50 expected arrivals vary by
    +-7, so "0.8 x peak" could offer more than "0.9 x peak")."""
    count = round(rate_per_s * span_s) if rate_per_s > 0 and span_s > 0 else 0
    rng = np.random.default_rng(seed)
    return sorted(float(moment) for moment in rng.uniform(0.0, span_s, size=count))
