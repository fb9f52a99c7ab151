"""Choose a listing's main image and order the rest.

Each candidate's distance to a compliant main image is computed once (`Distance`), from its
verdict AS MAIN (after any fix attempt), and the candidates rank, best first, by:
1. tier: compliant (approve), then fixable (compliant once its fix is applied), then failing
   (review or reject);
2. among failing images only, how much stands between each and compliance: first the problems
   in the picture (violations whose rule concerns the content), counted by severity, blocking
   before warnings before notes; then, the same way, the problems with the file (rules that read
   only `file.*`: size, format), which weigh least because re-exporting the same photo fixes
   them, where a problem in the picture needs a new photo. So an image whose only problem is a
   size warning beats one that shows a person and text. Compliant and fixable images carry no
   count (among them quality decides, as a fixed image is compliant);
3. quality.score, highest first (an image without a score ranks after every scored one);
4. the client's role hint: "main" first, then no hint, then "alternate";
5. position in the request.
Image ids are unique, so the order is total and the same input always gives the same answer.
When no image is compliant, `steps` lists the problems of each candidate and says which
difference put the main image first.
Then near-duplicates go: walking the ranking, an image whose pHash lies within
`duplicate_distance` bits of an image already kept is dropped as a duplicate of it, so the best
of each group stays (the main image is never dropped). Images that could not be assessed are
left out by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rules.evaluate import ImageVerdict, Violation
from rules.schema import Concern, SelectionSettings, Severity

RoleHint = Literal["main", "alternate"] | None

_TIER: dict[str, int] = {"approve": 0, "fix": 1, "review": 2, "reject": 2}
_TIER_LABEL: dict[str, str] = {
    "approve": "compliant", "fix": "fixable", "review": "for review", "reject": "rejected",
}
_SEVERITIES: tuple[Severity, ...] = ("block", "warn", "info")  # heaviest first
_SEVERITY_WORD: dict[Severity, str] = {"block": "blocking", "warn": "warning", "info": "note"}
_COUNTED: dict[Severity, tuple[str, str]] = {  # severity -> (one, many), for counts in words
    "block": ("blocking problem", "blocking problems"),
    "warn": ("warning", "warnings"),
    "info": ("note", "notes"),
}
DEFAULT_DUPLICATE_DISTANCE = SelectionSettings().duplicate_distance
_HINT: dict[RoleHint, int] = {"main": 0, None: 1, "alternate": 2}
_ORDER_COMPLIANT = "by verdict as main, then quality, then the client's hint, then position"
_ORDER_CLOSEST = (
    "by how close each comes to a compliant main image: fixable first, then the fewest problems "
    "in the picture (blocking, then warnings, then notes), then the fewest problems with the "
    "file (a new upload of the same photo solves those), then quality, then the client's hint, "
    "then position"
)


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


@dataclass(frozen=True)
class Distance:
    """How far a verdict as main is from compliant; smaller tuples are closer (module doc, 1-2).

    `picture` and `file` count violations by severity (block, warn, info) for a failing image
    and are zero for a compliant or fixable one."""

    tier: int  # 0 compliant, 1 fixable, 2 failing
    picture: tuple[int, int, int]  # violations about the content
    file: tuple[int, int, int]  # violations about the upload (size, format)

    @classmethod
    def of(cls, verdict: ImageVerdict) -> Distance:
        tier = _TIER[verdict.action]
        if tier < _TIER["review"]:
            return cls(tier, (0, 0, 0), (0, 0, 0))
        return cls(tier, _by_severity(verdict, "content"), _by_severity(verdict, "file"))

    @property
    def key(self) -> tuple[int, ...]:
        return (self.tier, *self.picture, *self.file)


def _by_severity(verdict: ImageVerdict, concerns: Concern) -> tuple[int, int, int]:
    about = [v.severity for v in verdict.violations if v.concerns == concerns]
    blocks, warnings, notes = (about.count(severity) for severity in _SEVERITIES)
    return blocks, warnings, notes


def hamming(hex_a: str, hex_b: str) -> int:
    return (int(hex_a, 16) ^ int(hex_b, 16)).bit_count()


def select_main_image(
    candidates: Sequence[Candidate], duplicate_distance: int = DEFAULT_DUPLICATE_DISTANCE
) -> Selection:
    """Rank the candidates, drop near-duplicates (see module doc) and explain each step."""
    _check(candidates)
    if not candidates:
        return Selection(None, (), False, "no assessable images", {}, ())
    distances = {c.image_id: Distance.of(c.verdict) for c in candidates}
    ranked = sorted(candidates, key=lambda c: _rank(c, distances[c.image_id]))
    kept, duplicates = _without_duplicates(ranked, duplicate_distance)
    main = kept[0]
    reason = _reason(main, ranked, distances)
    none_compliant = not main.verdict.compliant
    steps = [
        "ranked " + ", ".join(
            f"{c.image_id} ({_TIER_LABEL[c.verdict.action]}, {_quality(c.quality_score)})"
            for c in ranked
        ) + " " + (_ORDER_CLOSEST if none_compliant else _ORDER_COMPLIANT),
    ]
    if none_compliant:
        # Which problems each candidate has: what the ranking weighed, in the seller's terms.
        steps += [f"{c.image_id}: {_problems(c.verdict)}" for c in ranked]
    steps.append(f"main image: {reason}")
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


def _rank(candidate: Candidate, distance: Distance) -> tuple[int | float | str, ...]:
    score = candidate.quality_score
    return (
        *distance.key,
        0 if score is not None else 1,
        -(score or 0.0),
        _HINT.get(candidate.role_hint, 1),
        candidate.position,
        candidate.image_id,
    )


def _quality(score: float | None) -> str:
    return "quality unknown" if score is None else f"quality {score:.3g}"


def _problems(verdict: ImageVerdict) -> str:
    """The violations of a verdict as main, for a seller: what is wrong, where, how badly."""
    held = [v for v in verdict.violations if v.action != "approve"]
    if verdict.compliant:
        return "compliant"
    if verdict.fixable:
        fixes = ", ".join(f.name for f in verdict.fixes)
        return f"fixable{' by ' + fixes if fixes else ''}: {_listed(held)}"
    picture = [v for v in verdict.violations if v.concerns == "content"]
    file = [v for v in verdict.violations if v.concerns == "file"]
    problems = (f"problems in the picture: {_listed(picture)}" if picture
                else "no problem in the picture")
    return problems + (f"; problems with the file: {_listed(file)}" if file else "")


def _listed(violations: Sequence[Violation]) -> str:
    return ", ".join(f"{v.rule_id} ({_SEVERITY_WORD[v.severity]})" for v in violations)


def _counted(counts: tuple[int, int, int], where: str) -> str:
    words = [
        f"{n} {_COUNTED[severity][n != 1]}"
        for severity, n in zip(_SEVERITIES, counts, strict=True) if n
    ]
    return f"{' and '.join(words)} {where}" if words else f"no problem {where}"


def _summary(distance: Distance) -> str:
    """A failing image's distance in words: "1 blocking problem in the picture, ..."."""
    summary = _counted(distance.picture, "in the picture")
    if any(distance.file):
        summary += ", " + _counted(distance.file, "with the file")
    return summary


def _difference(closer: Distance, further: Distance, further_id: str) -> str:
    """Why `closer` ranks ahead: the first count (in ranking order) that differs."""
    names = [f"{_COUNTED[severity][1]} {where}"
             for where in ("in the picture", "with the file") for severity in _SEVERITIES]
    for name, mine, theirs in zip(names, closer.key[1:], further.key[1:], strict=True):
        if mine != theirs:
            return f"{further_id} has more {name}: {theirs} against {mine}"
    raise AssertionError("called only for different distances")


def _reason(main: Candidate, ranked: list[Candidate], distances: dict[str, Distance]) -> str:
    distance = distances[main.image_id]
    tier = [c for c in ranked if distances[c.image_id] == distance]
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
        status = (f"no image is compliant as main; {main.image_id} {needs} as main ({rules}): "
                  + _closeness(main, ranked, distances))
        label = "as close"
        if len(tier) == 1:
            return f"{status}, {_quality(main.quality_score)}"
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


def _closeness(main: Candidate, ranked: list[Candidate], distances: dict[str, Distance]) -> str:
    """A failing main image: how far it is from compliant, and what put it ahead of the first
    image further away (every image before that one is as close, and quality decided)."""
    distance = distances[main.image_id]
    further = next((c for c in ranked if distances[c.image_id] != distance), None)
    if further is None:
        return f"with {_summary(distance)}"
    return (f"the closest to compliant, with {_summary(distance)} "
            f"({_difference(distance, distances[further.image_id], further.image_id)})")
