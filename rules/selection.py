"""Choose a listing's main image and order the rest.

Ranking, best first:
1. tier of the image's verdict AS MAIN: approve (compliant), then fix (compliant once its fix is
   applied), then review, then reject;
2. quality.score, highest first (an image without a score ranks after every scored one);
3. the client's role hint: "main" first, then no hint, then "alternate";
4. position in the request.
Image ids are unique, so the order is total and the same input always gives the same answer.
Then near-duplicates go: walking the ranking, an image whose pHash lies within
`duplicate_distance` bits of an image already kept is dropped as a duplicate of it, so the best
of each group stays (the main image is never dropped). Images that could not be assessed are
left out by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rules.evaluate import ImageVerdict
from rules.schema import SelectionSettings

RoleHint = Literal["main", "alternate"] | None

_TIER: dict[str, int] = {"approve": 0, "fix": 1, "review": 2, "reject": 3}
_TIER_LABEL: dict[str, str] = {
    "approve": "compliant", "fix": "fixable", "review": "for review", "reject": "rejected",
}
DEFAULT_DUPLICATE_DISTANCE = SelectionSettings().duplicate_distance
_HINT: dict[RoleHint, int] = {"main": 0, None: 1, "alternate": 2}


@dataclass(frozen=True)
class Candidate:
    image_id: str
    position: int  # index in the request
    role_hint: RoleHint  # what the client asked for, if anything
    verdict: ImageVerdict  # the image evaluated AS MAIN (after any fix attempt)
    quality_score: float | None  # quality.score; None when the scorer gave none
    phash: str | None = None  # hash.phash, hex; None: never a duplicate


@dataclass(frozen=True)
class Selection:
    main_image_id: str | None
    order: tuple[str, ...]  # every kept candidate, main first
    main_image_compliant: bool
    reason: str
    duplicates: dict[str, str]  # dropped image id -> the kept image it duplicates
    steps: tuple[str, ...]  # how the order came about, for people


def hamming(hex_a: str, hex_b: str) -> int:
    return (int(hex_a, 16) ^ int(hex_b, 16)).bit_count()


def select_main_image(
    candidates: Sequence[Candidate], duplicate_distance: int = DEFAULT_DUPLICATE_DISTANCE
) -> Selection:
    """Rank the candidates, drop near-duplicates (see module doc) and explain each step."""
    _check(candidates)
    if not candidates:
        return Selection(None, (), False, "no assessable images", {}, ())
    ranked = sorted(candidates, key=_rank)
    kept, duplicates = _without_duplicates(ranked, duplicate_distance)
    main = kept[0]
    reason = _reason(main, ranked)
    steps = [
        "ranked " + ", ".join(
            f"{c.image_id} ({_TIER_LABEL[c.verdict.action]}, {_quality(c.quality_score)})"
            for c in ranked
        ) + " by verdict as main, then quality, then the client's hint, then position",
        f"main image: {reason}",
    ]
    steps += [
        f"{dropped} dropped: a near-duplicate of {original} (pHash distance "
        f"{hamming(_phash(ranked, dropped), _phash(ranked, original))} <= {duplicate_distance})"
        for dropped, original in duplicates.items()
    ]
    if len(kept) > 1:
        steps.append("alternates in rank order: " + ", ".join(c.image_id for c in kept[1:]))
    return Selection(
        main_image_id=main.image_id,
        order=tuple(c.image_id for c in kept),
        main_image_compliant=main.verdict.compliant or main.verdict.fixable,
        reason=reason,
        duplicates=duplicates,
        steps=tuple(steps),
    )


def _without_duplicates(
    ranked: list[Candidate], distance: int
) -> tuple[list[Candidate], dict[str, str]]:
    kept: list[Candidate] = []
    duplicates: dict[str, str] = {}
    for candidate in ranked:
        original = next(
            (k for k in kept if candidate.phash is not None and k.phash is not None
             and hamming(candidate.phash, k.phash) <= distance),
            None,
        )
        if original is None:
            kept.append(candidate)
        else:
            duplicates[candidate.image_id] = original.image_id
    return kept, duplicates


def _phash(candidates: list[Candidate], image_id: str) -> str:
    return next(c.phash for c in candidates if c.image_id == image_id) or "0"


def _check(candidates: Sequence[Candidate]) -> None:
    ids = [c.image_id for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate image ids among candidates: {sorted(ids)}")
    for candidate in candidates:
        if candidate.verdict.role != "main":
            raise ValueError(
                f"{candidate.image_id}: selection needs the verdict as main, "
                f"got one as {candidate.verdict.role}"
            )


def _rank(candidate: Candidate) -> tuple[int, int, float, int, int, str]:
    score = candidate.quality_score
    return (
        _TIER[candidate.verdict.action],
        0 if score is not None else 1,
        -(score or 0.0),
        _HINT.get(candidate.role_hint, 1),
        candidate.position,
        candidate.image_id,
    )


def _quality(score: float | None) -> str:
    return "quality unknown" if score is None else f"quality {score:.3g}"


def _reason(main: Candidate, ranked: list[Candidate]) -> str:
    tier = [c for c in ranked if c.verdict.action == main.verdict.action]
    tied = [c for c in tier[1:] if c.quality_score == main.quality_score]
    label = _TIER_LABEL[main.verdict.action]
    rules = ", ".join(v.rule_id for v in main.verdict.violations if v.action != "approve")
    if main.verdict.compliant:
        status = f"{main.image_id}: compliant as main image"
    elif main.verdict.fixable:
        status = (f"no image is compliant as main as it stands; {main.image_id} is once fixed "
                  f"({rules})")
    else:
        needs = "needs review" if main.verdict.action == "review" else "rejected"
        status = f"no image is compliant as main; {main.image_id} {needs} as main ({rules})"
    if len(tier) == 1:
        return f"{status}, the only one {label}, {_quality(main.quality_score)}"
    if not tied:
        # Scored images rank first, so an untied winner always has a score.
        return f"{status}, highest {_quality(main.quality_score)} among {len(tier)} {label}"
    others = ", ".join(c.image_id for c in tied)
    if _HINT.get(main.role_hint, 1) < min(_HINT.get(c.role_hint, 1) for c in tied):
        if main.role_hint == "main":
            why = "the client marked it main"
        else:
            why = "the client marked the others as alternates"
    else:
        why = "it comes first in the request"
    return f"{status}, {_quality(main.quality_score)}, tied with {others}; chosen because {why}"
