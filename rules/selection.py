"""Choose a listing's main image and order the rest.

Ranking, best first:
1. tier of the image's verdict AS MAIN: approve (compliant), then review, then reject;
2. quality.score, highest first (an image without a score ranks after every scored one);
3. the client's role hint: "main" first, then no hint, then "alternate";
4. position in the request.
Image ids are unique, so the order is total and the same input always gives the same answer.
Images that could not be assessed are left out by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rules.evaluate import ImageVerdict

RoleHint = Literal["main", "alternate"] | None

_TIER: dict[str, int] = {"approve": 0, "review": 1, "reject": 2}
_HINT: dict[RoleHint, int] = {"main": 0, None: 1, "alternate": 2}


@dataclass(frozen=True)
class Candidate:
    image_id: str
    position: int  # index in the request
    role_hint: RoleHint  # what the client asked for, if anything
    verdict: ImageVerdict  # the image evaluated AS MAIN, whatever its hint
    quality_score: float | None  # quality.score; None when the scorer gave none


@dataclass(frozen=True)
class Selection:
    main_image_id: str | None
    order: tuple[str, ...]  # every candidate, main first
    main_image_compliant: bool
    reason: str


def select_main_image(candidates: Sequence[Candidate]) -> Selection:
    """Rank the candidates (see module doc) and explain why the first one won."""
    _check(candidates)
    if not candidates:
        return Selection(None, (), False, "no assessable images")
    ranked = sorted(candidates, key=_rank)
    main = ranked[0]
    return Selection(
        main_image_id=main.image_id,
        order=tuple(c.image_id for c in ranked),
        main_image_compliant=main.verdict.compliant,
        reason=_reason(main, ranked),
    )


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
    if main.verdict.compliant:
        status = f"{main.image_id}: compliant as main image"
        label = "compliant"
    else:
        rules = ", ".join(v.rule_id for v in main.verdict.violations if v.action != "approve")
        needs = "needs review" if main.verdict.action == "review" else "rejected"
        status = f"no image is compliant as main; {main.image_id} {needs} as main ({rules})"
        label = "for review" if main.verdict.action == "review" else "rejected"
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
