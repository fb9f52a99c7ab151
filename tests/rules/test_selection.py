"""Main-image selection: tiers, quality, tie-breaking, explanations."""

from __future__ import annotations

import random

import pytest

from rules.evaluate import ImageVerdict, Violation
from rules.selection import Candidate, RoleHint, Selection, select_main_image

_VIOLATION = {
    "reject": Violation("main.background.white", "block", "reject", "background.white_fraction",
                        0.5, ">=", 0.97, "grey"),
    "review": Violation("main.size.zoom", "warn", "review", "file.longest_side", 900, ">=", 1000,
                        "small"),
    "fix": Violation("main.fill.target", "warn", "fix", "composition.fill_ratio", 0.7, ">=", 0.8,
                     "small in frame"),
}


def verdict(action: str, role: str = "main") -> ImageVerdict:
    violations = (_VIOLATION[action],) if action in _VIOLATION else ()
    return ImageVerdict("p", "v", role, action, violations)  # type: ignore[arg-type]


def candidate(image_id: str, position: int, action: str, score: float | None,
              hint: RoleHint = None, phash: str | None = None) -> Candidate:
    return Candidate(image_id, position, hint, verdict(action), score, phash)


def test_compliant_then_fixable_then_review_then_reject_then_quality() -> None:
    candidates = [
        candidate("rej-hi", 0, "reject", 0.99),
        candidate("rev-hi", 1, "review", 0.95),
        candidate("ok-lo", 2, "approve", 0.40),
        candidate("ok-hi", 3, "approve", 0.81),
        candidate("rev-lo", 4, "review", 0.30),
        candidate("rej-lo", 5, "reject", 0.10),
        candidate("fix-hi", 6, "fix", 0.97),
    ]
    selection = select_main_image(candidates)
    assert selection.order == ("ok-hi", "ok-lo", "fix-hi", "rev-hi", "rev-lo", "rej-hi", "rej-lo")
    assert selection.main_image_id == "ok-hi"
    assert selection.main_image_compliant
    assert selection.reason == (
        "ok-hi: compliant as main image, highest quality 0.81 among 2 compliant"
    )
    assert selection.steps[0].startswith(
        "ranked ok-hi (compliant, quality 0.81), ok-lo (compliant, quality 0.4), "
        "fix-hi (fixable, quality 0.97)"
    )


def test_a_fixable_image_beats_every_failing_one() -> None:
    selection = select_main_image([
        candidate("rev", 0, "review", 0.99),
        candidate("fixable", 1, "fix", 0.2),
    ])
    assert selection.main_image_id == "fixable"
    assert selection.main_image_compliant  # once fixed
    assert selection.reason == (
        "no image is compliant as main as it stands; fixable is once fixed (main.fill.target), "
        "the only one fixable, quality 0.2"
    )


def test_near_duplicates_leave_the_alternates() -> None:
    base = 0x8F3C_21A0_77D1_0E5B
    near = f"{base ^ 0b1011:016x}"  # 3 bits apart
    far = f"{base ^ 0xFFFF_0000:016x}"  # 16 bits apart
    selection = select_main_image([
        candidate("main", 0, "approve", 0.9, phash=f"{base:016x}"),
        candidate("copy-of-main", 1, "approve", 0.8, phash=near),
        candidate("other-view", 2, "approve", 0.7, phash=far),
        candidate("better-copy", 3, "approve", 0.75, phash=far),
        candidate("unhashed", 4, "approve", 0.1),
    ])
    assert selection.order == ("main", "better-copy", "unhashed")
    assert selection.duplicates == {"copy-of-main": "main", "other-view": "better-copy"}
    assert "copy-of-main dropped: a near-duplicate of main (pHash distance 3 <= 8)" in (
        selection.steps
    )
    strict = select_main_image([
        candidate("main", 0, "approve", 0.9, phash=f"{base:016x}"),
        candidate("copy-of-main", 1, "approve", 0.8, phash=near),
    ], duplicate_distance=2)
    assert strict.duplicates == {}


def test_only_compliant_image_wins_over_better_quality() -> None:
    selection = select_main_image([
        candidate("a", 0, "review", 0.9),
        candidate("b", 1, "approve", 0.2),
    ])
    assert selection.main_image_id == "b"
    assert selection.reason == "b: compliant as main image, the only one compliant, quality 0.2"


@pytest.mark.parametrize(
    ("candidates", "main", "reason"),
    [
        (
            [candidate("a", 0, "approve", 0.7), candidate("b", 1, "approve", 0.7, "main")],
            "b",
            "b: compliant as main image, quality 0.7, tied with a; chosen because the client "
            "marked it main",
        ),
        (
            [candidate("a", 1, "approve", 0.7), candidate("b", 0, "approve", 0.7)],
            "b",
            "b: compliant as main image, quality 0.7, tied with a; chosen because it comes first "
            "in the request",
        ),
        (
            [candidate("a", 0, "approve", 0.7, "alternate"), candidate("b", 1, "approve", 0.7)],
            "b",
            "b: compliant as main image, quality 0.7, tied with a; chosen because the client "
            "marked the others as alternates",
        ),
        (
            [candidate("a", 0, "approve", 0.7, "main"), candidate("b", 1, "approve", 0.7, "main")],
            "a",
            "a: compliant as main image, quality 0.7, tied with b; chosen because it comes first "
            "in the request",
        ),
    ],
    ids=["main-hint", "position", "alternate-hint-last", "both-hinted-position"],
)
def test_ties_are_broken_by_hint_then_position(
    candidates: list[Candidate], main: str, reason: str
) -> None:
    selection = select_main_image(candidates)
    assert selection.main_image_id == main
    assert selection.reason == reason


def test_hint_does_not_beat_quality_or_compliance() -> None:
    selection = select_main_image([
        candidate("hinted", 0, "approve", 0.5, "main"),
        candidate("better", 1, "approve", 0.6),
        candidate("hinted-bad", 2, "reject", 0.9, "main"),
    ])
    assert selection.order == ("better", "hinted", "hinted-bad")


def test_order_is_deterministic_whatever_the_input_order() -> None:
    candidates = [
        candidate(f"img-{i}", i, action, score, hint)
        for i, (action, score, hint) in enumerate([
            ("approve", 0.5, None), ("approve", 0.5, "main"), ("review", 0.5, None),
            ("approve", 0.5, None), ("reject", 0.9, "main"), ("approve", None, None),
            ("approve", 0.8, "alternate"), ("review", 0.5, "main"),
        ])
    ]
    expected = ("img-6", "img-1", "img-0", "img-3", "img-5", "img-7", "img-2", "img-4")
    rng = random.Random(7)
    for _ in range(20):
        shuffled = list(candidates)
        rng.shuffle(shuffled)
        assert select_main_image(shuffled).order == expected


def test_missing_quality_ranks_last_within_its_tier() -> None:
    selection = select_main_image([
        candidate("unscored", 0, "approve", None, "main"),
        candidate("scored", 1, "approve", 0.01),
        candidate("review", 2, "review", 0.9),
    ])
    assert selection.order == ("scored", "unscored", "review")


def test_no_compliant_image_picks_the_best_to_review() -> None:
    selection = select_main_image([
        candidate("a", 0, "reject", 0.9),
        candidate("b", 1, "review", 0.6),
        candidate("c", 2, "review", 0.7),
    ])
    assert (selection.main_image_id, selection.order) == ("c", ("c", "b", "a"))
    assert not selection.main_image_compliant
    assert selection.reason == (
        "no image is compliant as main; c needs review as main (main.size.zoom), "
        "highest quality 0.7 among 2 for review"
    )


def test_all_rejected() -> None:
    selection = select_main_image([candidate("a", 0, "reject", 0.3)])
    assert selection.main_image_id == "a"
    assert selection.main_image_compliant is False
    assert selection.reason == (
        "no image is compliant as main; a rejected as main (main.background.white), "
        "the only one rejected, quality 0.3"
    )


def test_no_candidates() -> None:
    assert select_main_image([]) == Selection(None, (), False, "no assessable images", {}, ())


def test_unscored_tie_is_explained() -> None:
    selection = select_main_image([
        candidate("a", 0, "approve", None), candidate("b", 1, "approve", None),
    ])
    assert selection.reason == (
        "a: compliant as main image, quality unknown, tied with b; chosen because it comes "
        "first in the request"
    )


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate image ids"):
        select_main_image([candidate("a", 0, "approve", 0.5), candidate("a", 1, "approve", 0.4)])


def test_verdict_must_be_as_main() -> None:
    bad = Candidate("a", 0, None, verdict("approve", role="alternate"), 0.5)
    with pytest.raises(ValueError, match="a: selection needs the verdict as main"):
        select_main_image([bad])
