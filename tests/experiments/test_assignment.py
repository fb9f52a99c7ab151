"""The assignment hash against published vectors, its stability, the split it gives, and the
range layout that lets a ramp grow without moving anyone it need not move."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from experiments.assignment import (
    BUCKETS,
    assign,
    bucket,
    bucket_ranges,
    buckets,
    fnv1a32,
    hash_v2,
    variant_for_bucket,
    variants_for_buckets,
)
from experiments.config import ExperimentConfig
from experiments.stats import sample_ratio_mismatch

REPO = Path(__file__).resolve().parents[2]


def experiment(**fields: object) -> ExperimentConfig:
    data: dict[str, object] = {
        "id": "exp-1",
        "primary_metric": "click",
        "variants": [{"name": "control"}, {"name": "treatment"}],
    }
    data.update(fields)
    return ExperimentConfig.model_validate(data)


def ramped() -> ExperimentConfig:
    return experiment(ramp=[1, 5, 25, 50])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Reference values of the FNV specification (draft-eastlake-fnv).
        pytest.param("", 0x811C9DC5, id="empty-is-offset-basis"),
        pytest.param("a", 0xE40C292C, id="a"),
        pytest.param("foobar", 0xBF9CF968, id="foobar"),
    ],
)
def test_fnv1a32_reference_values(text: str, expected: int) -> None:
    assert fnv1a32(text) == expected


def test_fnv1a32_hashes_utf8_bytes() -> None:
    by_hand = 0x811C9DC5
    for byte in "é".encode():
        by_hand = ((by_hand ^ byte) * 0x01000193) % 2**32
    assert fnv1a32("é") == by_hand


@pytest.mark.parametrize(
    ("seed", "unit_id", "expected"),
    [
        # GrowthBook's hash v2 test cases (cases.json, "hash" with version 2).
        pytest.param("seed", "a", 0.0505, id="seed-a"),
        pytest.param("seed", "b", 0.2696, id="seed-b"),
        pytest.param("foo", "ab", 0.2575, id="foo-ab"),
        pytest.param("foo", "def", 0.2019, id="foo-def"),
        pytest.param("89123klj", "8952klfjas09ujkasdf", 0.124, id="long-unit"),
    ],
)
def test_hash_v2_matches_growthbook(seed: str, unit_id: str, expected: float) -> None:
    assert hash_v2(seed, unit_id) == expected
    assert bucket(seed, unit_id) == round(expected * BUCKETS)


def test_vectorised_buckets_equal_one_by_one() -> None:
    unit_ids = ["", "a", "listing-1", "listing-12345678901234567890", "é-ünïcode", "x" * 70]
    unit_ids += [f"L-{index}" for index in range(500)]
    assert buckets("salt", unit_ids).tolist() == [bucket("salt", uid) for uid in unit_ids]
    assert buckets("salt", []).tolist() == []


def test_assignment_is_the_same_in_another_process() -> None:
    config = ramped()
    unit_ids = [f"listing-{index}" for index in range(200)]
    script = (
        "import json, sys\n"
        "from experiments.assignment import assign\n"
        "from experiments.config import ExperimentConfig\n"
        "config = ExperimentConfig.model_validate_json(sys.argv[1])\n"
        "ids = json.loads(sys.argv[2])\n"
        "print(json.dumps([[assign(config, uid, {'treatment': 0.5, 'control': 0.5}).variant,"
        " assign(config, uid).bucket] for uid in ids]))\n"
    )
    # A different PYTHONHASHSEED would change anything built on Python's hash().
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", script, config.model_dump_json(), json.dumps(unit_ids)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=REPO,
    )
    elsewhere = json.loads(completed.stdout)
    here = [
        [
            assign(config, uid, {"treatment": 0.5, "control": 0.5}).variant,
            assign(config, uid).bucket,
        ]
        for uid in unit_ids
    ]
    assert elsewhere == here


def test_100k_units_split_as_weighted() -> None:
    config = experiment(
        variants=[
            {"name": "control", "weight": 2},
            {"name": "a", "weight": 3},
            {"name": "b", "weight": 5},
        ]
    )
    unit_ids = [f"listing-{index}" for index in range(100_000)]
    variants = variants_for_buckets(bucket_ranges(config), buckets(config.salt, unit_ids))
    counts = Counter(variants.tolist())
    weights = config.normalized_weights()
    assert weights == {"control": 0.2, "a": 0.3, "b": 0.5}
    for name, share in weights.items():
        assert counts[name] / 100_000 == pytest.approx(share, abs=0.005)
    srm = sample_ratio_mismatch(dict(counts), weights)
    assert srm.code == "ok" and not srm.mismatch
    # The scalar path agrees on a sample of them.
    assert all(
        assign(config, uid).variant == variants[index] for index, uid in enumerate(unit_ids[:2000])
    )


def test_treatments_come_first_and_control_takes_the_rest() -> None:
    config = experiment(
        variants=[
            {"name": "control", "weight": 1},
            {"name": "a", "weight": 1},
            {"name": "b", "weight": 2},
        ]
    )
    ranges = bucket_ranges(config)
    assert [(r.variant, r.start, r.end) for r in ranges] == [
        ("a", 0, 2500),
        ("b", 2500, 7500),
        ("control", 7500, BUCKETS),
    ]
    assert variant_for_bucket(ranges, 0) == "a"
    assert variant_for_bucket(ranges, 7499) == "b"
    assert variant_for_bucket(ranges, BUCKETS - 1) == "control"
    with pytest.raises(ValueError, match="outside"):
        variant_for_bucket(ranges, BUCKETS)


def test_a_zero_weight_variant_gets_no_units() -> None:
    config = ramped()
    ranges = bucket_ranges(config, {"treatment": 0.0, "control": 1.0})
    assert [(r.variant, r.start, r.end) for r in ranges] == [
        ("treatment", 0, 0),
        ("control", 0, BUCKETS),
    ]
    every_bucket = np.arange(BUCKETS)
    assert set(variants_for_buckets(ranges, every_bucket).tolist()) == {"control"}


@pytest.mark.parametrize(
    "percents",
    [
        pytest.param([1, 5, 25, 50, 100], id="canary-ramp"),
        pytest.param([5, 25], id="five-to-twenty-five"),
    ],
)
def test_raising_the_treatment_moves_only_control_units(percents: list[float]) -> None:
    config = ramped()
    unit_ids = [f"listing-{index}" for index in range(20_000)]
    unit_buckets = buckets(config.salt, unit_ids)
    previous, last_percent = None, 0.0
    for percent in percents:
        ranges = bucket_ranges(config, config.normalized_weights(percent))
        assert ranges[0].variant == "treatment"
        assert (ranges[0].start, ranges[0].end) == (0, round(percent * 100))
        current = variants_for_buckets(ranges, unit_buckets)
        if previous is not None:
            moved = previous != current
            # Every unit that moved went from control to the treatment; no treated unit left.
            assert set(previous[moved].tolist()) <= {"control"}
            assert set(current[moved].tolist()) <= {"treatment"}
            assert np.all(current[previous == "treatment"] == "treatment")
            # And as many moved as the step asks for, no more.
            assert moved.mean() == pytest.approx((percent - last_percent) / 100, abs=0.01)
        previous, last_percent = current, percent


def test_different_salts_give_independent_assignments() -> None:
    first, second = experiment(id="exp-a"), experiment(id="exp-b")
    assert (first.salt, second.salt) == ("exp-a", "exp-b")
    unit_ids = [f"listing-{index}" for index in range(20_000)]
    in_first = variants_for_buckets(bucket_ranges(first), buckets(first.salt, unit_ids))
    in_second = variants_for_buckets(bucket_ranges(second), buckets(second.salt, unit_ids))
    both_treated = np.mean((in_first == "treatment") & (in_second == "treatment"))
    assert both_treated == pytest.approx(0.25, abs=0.015)


def test_assign_reports_experiment_variant_and_bucket() -> None:
    config = experiment(salt="salt-1")
    result = assign(config, "listing-7")
    assert result.experiment_id == "exp-1"
    assert result.bucket == bucket("salt-1", "listing-7")
    assert result.variant == ("treatment" if result.bucket < 5000 else "control")


def test_weights_for_an_unknown_variant_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown variants"):
        assign(experiment(), "listing-1", {"control": 0.5, "other": 0.5})
    with pytest.raises(ValueError, match="positive sum"):
        assign(experiment(), "listing-1", {"control": 0.0, "treatment": 0.0})
