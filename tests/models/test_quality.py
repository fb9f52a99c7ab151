"""models.quality: scorer card v0 against hand-computed values."""

from __future__ import annotations

import pytest

from curator.contracts import vocabulary
from models.quality import SCORER_NAME, ScorerCardV0

CARD = ScorerCardV0()


@pytest.mark.parametrize(
    ("sharpness", "longest", "fill", "expected"),
    [
        (1.0, 1600, 0.85, 1.0),  # every term at its best
        (0.0, 0, 0.0, 0.0),  # every term at its worst
        (0.5, 800, 0.85, 0.5 * 0.5 + 0.3 * 0.5 + 0.2 * 1.0),
        (0.8, 3200, 0.425, 0.5 * 0.8 + 0.3 * 1.0 + 0.2 * 0.5),  # resolution term capped at 1
        (0.8, 1600, 1.0, 0.5 * 0.8 + 0.3 + 0.2 * (1 - 0.15 / 0.85)),
    ],
    ids=["best", "worst", "half-res", "half-fill", "overfilled"],
)
def test_score(sharpness: float, longest: int, fill: float, expected: float) -> None:
    assert CARD.score(sharpness, longest, fill) == pytest.approx(expected)


def test_attributes_are_in_the_vocabulary() -> None:
    produced = CARD.attributes(
        {"sharpness.score": 0.7, "file.longest_side": 1000, "composition.fill_ratio": 0.6}
    )
    assert produced["quality.scorer"] == SCORER_NAME
    for name, value in produced.items():
        vocabulary.check_value(name, value)


def test_a_missing_number_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        CARD.attributes(
            {"sharpness.score": None, "file.longest_side": 1000, "composition.fill_ratio": 0.6}
        )
