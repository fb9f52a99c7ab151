"""Deterministic assignment of units (listings) to experiment variants.

The hash is GrowthBook's v2: `fnv1a32(str(fnv1a32(seed + unit_id))) % 10000`, FNV-1a 32-bit over
UTF-8 bytes. Hashing twice decorrelates experiments whose seeds share a prefix, and the result
depends on nothing but the two strings, so every process (and every GrowthBook SDK) agrees.

Range layout: the treatments take contiguous bucket ranges from bucket 0 in the order the config
lists them, and control takes what is left at the top. With one treatment (every ramped canary)
raising its share grows its range in place, `[0, p*100)`, so each ramp step is a superset of the
previous one: only control units move, and only into the treatment. With several treatments,
growing one shifts the ranges after it; change the salt rather than the weights of such an
experiment once it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from experiments.config import ExperimentConfig

FNV_OFFSET_BASIS = 0x811C9DC5
FNV_PRIME = 0x01000193
BUCKETS = 10_000  # buckets of the hash; one bucket is 0.01% of the traffic


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit hash of the UTF-8 bytes of `text`."""
    value = FNV_OFFSET_BASIS
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value


def bucket(seed: str, unit_id: str) -> int:
    """The unit's bucket, 0..9999."""
    return fnv1a32(str(fnv1a32(seed + unit_id))) % BUCKETS


def hash_v2(seed: str, unit_id: str) -> float:
    """GrowthBook's hash v2, in [0, 1) with 4 decimals."""
    return bucket(seed, unit_id) / BUCKETS


def buckets(seed: str, unit_ids: Sequence[str]) -> NDArray[np.int64]:
    """`bucket` of many units at once (numpy); the same values as one by one."""
    first = _fnv1a32_array([seed + unit_id for unit_id in unit_ids])
    second = _fnv1a32_array([str(value) for value in first.tolist()])
    return (second % BUCKETS).astype(np.int64)


def _fnv1a32_array(texts: Sequence[str]) -> NDArray[np.uint32]:
    encoded = [text.encode("utf-8") for text in texts]
    lengths = np.fromiter((len(item) for item in encoded), dtype=np.int64, count=len(encoded))
    width = int(lengths.max(initial=0))
    padded = np.frombuffer(
        b"".join(item.ljust(width, b"\0") for item in encoded), dtype=np.uint8
    ).reshape(len(encoded), width)
    values = np.full(len(encoded), FNV_OFFSET_BASIS, dtype=np.uint32)
    prime = np.uint32(FNV_PRIME)
    for column in range(width):
        # uint32 array arithmetic wraps modulo 2**32, which is what FNV wants.
        mixed = (values ^ padded[:, column]) * prime
        values = np.where(lengths > column, mixed, values)
    return values


@dataclass(frozen=True)
class BucketRange:
    """Buckets [start, end) go to `variant`."""

    variant: str
    start: int
    end: int


@dataclass(frozen=True)
class Assignment:
    experiment_id: str
    variant: str
    bucket: int


def bucket_ranges(
    experiment: ExperimentConfig, weights: Mapping[str, float] | None = None
) -> tuple[BucketRange, ...]:
    """The bucket range of every variant: treatments from bucket 0, control last.

    `weights` (by variant name, normalised here) overrides the config's, e.g. the canary's
    current ramp step. Boundaries are the rounded cumulative weights, so rounding errors do
    not add up along the variants.
    """
    shares = experiment.normalized_weights() if weights is None else _normalized(weights)
    unknown = set(shares) - set(experiment.variant_names)
    if unknown:
        raise ValueError(
            f"experiment {experiment.id}: weights for unknown variants {sorted(unknown)}"
        )
    order = [*experiment.treatment_names, experiment.control]
    ranges: list[BucketRange] = []
    start, cumulative = 0, 0.0
    for name in order:
        cumulative += shares.get(name, 0.0)
        end = BUCKETS if name == order[-1] else min(BUCKETS, round(cumulative * BUCKETS))
        ranges.append(BucketRange(name, start, end))
        start = end
    return tuple(ranges)


def _normalized(weights: Mapping[str, float]) -> dict[str, float]:
    if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {dict(weights)}")
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def variant_for_bucket(ranges: Sequence[BucketRange], unit_bucket: int) -> str:
    for bucket_range in ranges:
        if bucket_range.start <= unit_bucket < bucket_range.end:
            return bucket_range.variant
    raise ValueError(f"bucket {unit_bucket} is outside 0..{BUCKETS - 1}")


def variants_for_buckets(
    ranges: Sequence[BucketRange], unit_buckets: NDArray[np.int64]
) -> NDArray[np.str_]:
    """`variant_for_bucket` over an array of buckets."""
    ends = np.array([bucket_range.end for bucket_range in ranges])
    names = np.array([bucket_range.variant for bucket_range in ranges])
    # side="right" skips empty ranges, whose end equals the next range's start.
    return names[np.searchsorted(ends, unit_buckets, side="right")]


def assign(
    experiment: ExperimentConfig, unit_id: str, weights: Mapping[str, float] | None = None
) -> Assignment:
    """The variant `unit_id` sees; `weights` as in `bucket_ranges`."""
    unit_bucket = bucket(experiment.salt, unit_id)
    variant = variant_for_bucket(bucket_ranges(experiment, weights), unit_bucket)
    return Assignment(experiment.id, variant, unit_bucket)
