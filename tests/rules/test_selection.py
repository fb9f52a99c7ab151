"""Main-image selection: tiers, quality, tie-breaking, explanations."""

from __future__ import annotations

import random

import pytest

from rules.evaluate import ImageVerdict, Violation, strongest_action
from rules.schema import FixRef
from rules.selection import Candidate, Distance, RoleHint, Selection, select_main_image

_VIOLATION = {
    "reject": Violation("main.background.white", "block", "reject", "background.white_fraction",
                        0.5, ">=", 0.97, "grey"),
    "review": Violation("main.size.zoom", "warn", "review", "file.longest_side", 900, ">=", 1000,
                        "small"),
    "fix": Violation("main.fill.target", "warn", "fix", "composition.fill_ratio", 0.7, ">=", 0.8,
                     "small in frame", fix=FixRef.model_validate("pad_to_fill")),
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
        "no image is compliant as main; c needs review as main (main.size.zoom): the closest to "
        "compliant, with 1 warning in the picture (a has more blocking problems in the picture: "
        "1 against 0), highest quality 0.7 among 2 as close"
    )


def test_all_rejected() -> None:
    selection = select_main_image([candidate("a", 0, "reject", 0.3)])
    assert selection.main_image_id == "a"
    assert selection.main_image_compliant is False
    assert selection.reason == (
        "no image is compliant as main; a rejected as main (main.background.white): "
        "with 1 blocking problem in the picture, quality 0.3"
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


# --- no compliant image: ranked by distance to compliant ----------------------------------------

SIZE = Violation("image.size.minimum", "warn", "review", "file.longest_side", 400, ">=", 500,
                 "small file", concerns="file")
ZOOM = Violation("main.size.zoom", "warn", "review", "file.longest_side", 400, ">=", 1000,
                 "no zoom", concerns="file")
FORMAT = Violation("image.format.accepted", "block", "reject", "file.format", "BMP", "in",
                   ("JPEG", "PNG"), "format", concerns="file")
PERSON = Violation("main.people.none", "warn", "review", "people.person", True, "==", False,
                   "person")
TEXT = Violation("main.text.no_overlay", "block", "reject", "text.overlay", True, "==", False,
                 "text")
CROPPED = Violation("main.composition.not_cropped", "block", "review", "composition.fill_ratio",
                    0.6, ">=", 0.98, "cropped")
BLUR = Violation("main.sharpness.minimum", "warn", "review", "sharpness.score", 0.2, ">=", 0.5,
                 "blurred")
COLOUR_NOTE = Violation("image.color_mode", "info", "approve", "file.color_mode", "L", "in",
                        ("RGB", "CMYK"), "grey", concerns="file")


def failing(image_id: str, position: int, score: float | None, *violations: Violation,
            hint: RoleHint = None) -> Candidate:
    verdict = ImageVerdict("p", "v", "main", strongest_action(v.action for v in violations),
                           violations)
    return Candidate(image_id, position, hint, verdict, score)


def verdict_with(action: str, *violations: Violation) -> ImageVerdict:
    return ImageVerdict("p", "v", "main", action, violations)  # type: ignore[arg-type]


def test_distance_counts_picture_then_file_by_severity() -> None:
    mixed = failing("a", 0, 0.5, TEXT, PERSON, BLUR, SIZE, FORMAT, COLOUR_NOTE).verdict
    assert Distance.of(mixed) == Distance(2, (1, 2, 0), (1, 1, 1))
    # Compliant and fixable images carry no count: quality decides among them.
    noted = verdict_with("approve", COLOUR_NOTE)
    assert Distance.of(noted) == Distance(0, (0, 0, 0), (0, 0, 0))
    assert Distance.of(verdict("fix")) == Distance(1, (0, 0, 0), (0, 0, 0))


def test_a_size_warning_alone_beats_a_person_and_text() -> None:
    selection = select_main_image([
        failing("person-and-text", 0, 0.95, PERSON, TEXT),
        failing("person", 1, 0.9, PERSON),
        failing("small-file", 2, 0.2, SIZE, ZOOM),
    ])
    # By verdict tier alone "person" (review, higher quality) would have won.
    assert selection.order == ("small-file", "person", "person-and-text")
    assert not selection.main_image_compliant
    assert selection.reason == (
        "no image is compliant as main; small-file needs review as main (image.size.minimum, "
        "main.size.zoom): the closest to compliant, with no problem in the picture, 2 warnings "
        "with the file (person has more warnings in the picture: 1 against 0), quality 0.2"
    )


def test_a_fixable_image_beats_every_failing_one_however_close() -> None:
    selection = select_main_image([
        failing("small-file", 0, 0.9, SIZE),
        failing("person-and-text", 1, 0.95, PERSON, TEXT),
        candidate("fixable", 2, "fix", 0.1),
    ])
    assert selection.order == ("fixable", "small-file", "person-and-text")
    assert selection.main_image_compliant  # once fixed
    assert selection.steps[1:4] == (
        "fixable: fixable by pad_to_fill: main.fill.target (warning)",
        "small-file: no problem in the picture; problems with the file: image.size.minimum "
        "(warning)",
        "person-and-text: problems in the picture: main.people.none (warning), "
        "main.text.no_overlay (blocking)",
    )


def test_fewer_blocking_problems_beat_more_then_fewer_warnings() -> None:
    selection = select_main_image([
        failing("two-blocks", 0, 0.99, TEXT, _VIOLATION["reject"]),
        failing("one-block-three-warnings", 1, 0.1, CROPPED, PERSON, BLUR, PERSON),
        failing("one-block-one-warning", 2, 0.05, TEXT, BLUR),
    ])
    assert selection.order == ("one-block-one-warning", "one-block-three-warnings", "two-blocks")
    assert "(one-block-three-warnings has more warnings in the picture: 3 against 1)" in (
        selection.reason
    )


def test_problems_with_the_file_weigh_least() -> None:
    # A blocking file problem (an unsupported format: re-export the photo) weighs less than one
    # warning about the picture; with the picture's problems equal, fewer file problems win.
    selection = select_main_image([
        failing("person", 0, 0.9, PERSON),
        failing("bmp-file", 1, 0.3, FORMAT, SIZE),
        failing("person-small-file", 2, 0.99, PERSON, SIZE),
    ])
    assert selection.order == ("bmp-file", "person", "person-small-file")
    assert "person has more warnings in the picture: 1 against 0" in selection.reason
    assert "with no problem in the picture, 1 blocking problem and 1 warning with the file" in (
        selection.reason
    )


def test_equally_close_images_rank_by_quality_then_hint_then_position() -> None:
    selection = select_main_image([
        failing("a", 0, 0.5, PERSON),
        failing("b", 1, 0.7, BLUR),
        failing("c", 2, 0.5, PERSON, hint="main"),
        failing("d", 3, None, PERSON),
        failing("e", 4, 0.5, TEXT),
    ])
    assert selection.order == ("b", "c", "a", "d", "e")
    assert selection.reason.endswith(
        "(e has more blocking problems in the picture: 1 against 0), highest quality 0.7 among "
        "4 as close"
    )
    tied = select_main_image([
        failing("a", 0, 0.5, PERSON), failing("c", 1, 0.5, BLUR, hint="main"),
    ])
    assert tied.reason == (
        "no image is compliant as main; c needs review as main (main.sharpness.minimum): with 1 "
        "warning in the picture, quality 0.5, tied with a; chosen because the client marked it "
        "main"
    )


def test_the_steps_say_what_each_candidate_lacks_and_why_the_main_won() -> None:
    selection = select_main_image([
        failing("model-shot", 0, 0.8, PERSON, TEXT),
        failing("small", 1, 0.4, SIZE),
    ])
    assert selection.steps == (
        "ranked small (for review, quality 0.4), model-shot (rejected, quality 0.8) by how close "
        "each comes to a compliant main image: fixable first, then the fewest problems in the "
        "picture (blocking, then warnings, then notes), then the fewest problems with the file (a "
        "new upload of the same photo solves those), then quality, then the client's hint, then "
        "position",
        "small: no problem in the picture; problems with the file: image.size.minimum (warning)",
        "model-shot: problems in the picture: main.people.none (warning), main.text.no_overlay "
        "(blocking)",
        "main image: no image is compliant as main; small needs review as main "
        "(image.size.minimum): the closest to compliant, with no problem in the picture, 1 "
        "warning with the file (model-shot has more blocking problems in the picture: 1 against "
        "0), quality 0.4",
        "alternates in rank order: model-shot",
    )


def test_a_compliant_image_still_ranks_by_quality_alone() -> None:
    # Notes do not make a compliant image less compliant, and no problem list is given.
    selection = select_main_image([
        Candidate("noted", 0, None, verdict_with("approve", COLOUR_NOTE), 0.9),
        candidate("clean", 1, "approve", 0.8),
        failing("small", 2, 0.99, SIZE),
    ])
    assert selection.order == ("noted", "clean", "small")
    assert len(selection.steps) == 3 and selection.steps[1].startswith("main image: noted:")


def test_failing_order_is_deterministic_whatever_the_input_order() -> None:
    candidates = [
        failing("a", 0, 0.5, PERSON), failing("b", 1, 0.5, SIZE), failing("c", 2, 0.5, TEXT),
        failing("d", 3, 0.5, PERSON, hint="main"), failing("e", 4, 0.9, SIZE, ZOOM),
        failing("f", 5, None, SIZE), failing("g", 6, 0.5, PERSON, hint="alternate"),
    ]
    expected = ("b", "f", "e", "d", "a", "g", "c")
    rng = random.Random(11)
    for _ in range(20):
        shuffled = list(candidates)
        rng.shuffle(shuffled)
        assert select_main_image(shuffled).order == expected
