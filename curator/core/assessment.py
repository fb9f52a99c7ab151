"""From measured images to the listing answer: verdicts, actions and the main image.

Plain Python shared by the ingress deployment, `curator assess` and the benchmark's in-process
limit, so the online graph and every offline path decide identically.

Every image is evaluated twice, as a main image and as an alternate: selection ranks images by
their verdict *as main*, then the winner is reported with its main verdict and every other image
with its alternate verdict (the looser rules that really apply to it).

Fixes: when every violation holding an image back calls for a fix, the caller's `Fixer` applies
the fixes and measures the fixed image through the same stages; the fix is kept only when the
fixed image passes the rules it targeted and fails none the original passed. Otherwise each fix
rule falls back to its `otherwise` action. The main-image candidates are fixed as main first (a
fixable image ranks between compliant and failing ones), then the alternates as alternates.

Every fix considered is explained in the image's `fix`, so a seller knows what to do: the fix in
the image's role, kept or refused, with the rule that stood in the way (the one the fixed image
would break, or the one it still fails); for an alternate without one, a fix tried as main and
refused (why it could not be the main image); and a fix a violation calls for but that was not
attempted because another violation, one no fix resolves, holds the image back.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.contracts import schemas
from curator.core.measured import FixedMeasurement, Fixer, MeasuredImage
from rules import Candidate, ImageVerdict, Policy, PolicySet, Violation, evaluate, select_main_image
from rules.evaluate import Role

if TYPE_CHECKING:
    pass

CONTROL_VARIANT = "control"


@dataclass(frozen=True)
class FixOutcome:
    accepted: bool
    reason: str
    targeted: tuple[str, ...]  # rule ids the fixes were for
    role: Role  # the role the image was fixed (or would have been) for
    fixed: FixedMeasurement | None = None
    verdict: ImageVerdict | None = None  # the fixed image's verdict in the same role
    # Refused: the rule in the way, the one the fixed image would break, else one it still
    # fails, else (nothing applied) the one it could not resolve; the one no fix resolves when
    # not attempted.
    rule_id: str | None = None


@dataclass
class _Image:
    measured: MeasuredImage
    position: int
    role_hint: Role | None
    verdicts: dict[Role, ImageVerdict]
    fixes: dict[Role, FixOutcome]


class ListingAssessor:
    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies

    @property
    def policy_set_version(self) -> str:
        return self.policies.version

    def policy_for(self, category: str, marketplace: str) -> Policy:
        return self.policies.resolve(category, marketplace)

    async def assess(
        self,
        *,
        listing_id: str,
        category: str,
        marketplace: str,
        images: Sequence[MeasuredImage],
        roles: Sequence[Role | None],
        fixer: Fixer | None = None,
        include_fixed_images: bool = True,
        variant: str = CONTROL_VARIANT,
        experiment_id: str | None = None,
        bucket: int | None = None,
    ) -> schemas.AssessResponse:
        policy = self.policy_for(category, marketplace)
        assessed = [
            _Image(image, position, hint, {r: evaluate(policy, image.attributes, r)
                                            for r in ("main", "alternate")}, {})
            for position, (image, hint) in enumerate(zip(images, roles, strict=True))
            if image.attributes is not None
        ]
        # Fix as main whatever could become a compliant main image, so it can rank as fixable.
        await self._fix_all(policy, assessed, "main", fixer)
        selection = select_main_image(
            [
                Candidate(
                    image_id=image.measured.image_id,
                    position=image.position,
                    role_hint=image.role_hint,
                    verdict=_effective(image, "main"),
                    quality_score=_quality_score(image, "main"),
                    phash=_str_or_none(image.measured.attributes, "hash.phash"),
                )
                for image in assessed
            ],
            duplicate_distance=policy.selection.duplicate_distance,
        )
        alternates = [
            image for image in assessed
            if image.measured.image_id != selection.main_image_id
            and image.measured.image_id not in selection.duplicates
        ]
        await self._fix_all(policy, alternates, "alternate", fixer)
        by_id = {image.measured.image_id: image for image in assessed}
        answers = []
        for image in images:
            if image.attributes is None:
                answers.append(_error_answer(image))
                continue
            role: Role = "main" if image.image_id == selection.main_image_id else "alternate"
            answers.append(_image_answer(
                by_id[image.image_id], role, selection.duplicates.get(image.image_id),
                include_fixed_images,
            ))
        return schemas.AssessResponse(
            listing_id=listing_id,
            decision_id=str(uuid.uuid4()),
            category=category,
            marketplace=marketplace,
            policy_id=policy.id,
            policy_version=policy.version,
            policy_set_version=self.policies.version,
            variant=variant,
            experiment_id=experiment_id,
            bucket=bucket,
            images=answers,
            selection=schemas.Selection(
                main_image_id=selection.main_image_id,
                order=list(selection.order),
                main_image_compliant=selection.main_image_compliant,
                reason=selection.reason,
                duplicates=selection.duplicates,
                steps=list(selection.steps),
            ),
        )

    async def _fix_all(
        self, policy: Policy, images: Sequence[_Image], role: Role, fixer: Fixer | None
    ) -> None:
        todo = [image for image in images if image.verdicts[role].fixable]
        outcomes = await asyncio.gather(
            *(_try_fixes(policy, image, role, fixer) for image in todo)
        )
        for image, outcome in zip(todo, outcomes, strict=True):
            image.fixes[role] = outcome


async def _try_fixes(policy: Policy, image: _Image, role: Role, fixer: Fixer | None) -> FixOutcome:
    verdict = image.verdicts[role]
    targeted = tuple(v.rule_id for v in verdict.violations if v.action == "fix")
    if fixer is None:
        return FixOutcome(False, "fixes are not applied on this path", targeted, role)
    fixed = await fixer(image.measured.image_id, verdict.fixes)
    if fixed.measured.attributes is None:
        error = (fixed.measured.error or {}).get("message", "the fix failed")
        return FixOutcome(False, f"could not fix: {error}", targeted, role, fixed,
                          rule_id=targeted[0])
    after = evaluate(policy, fixed.measured.attributes, role)
    still = [v for v in after.violations if v.rule_id in targeted]
    before = {v.rule_id for v in verdict.violations}
    new = [v for v in after.violations if v.rule_id not in before]
    if still or new:
        # The rule it would break comes first: that is what the seller cannot get round by
        # accepting the fix, and what the reason's message then describes.
        blocking = (new + still)[0]
        problems = [f"still fails {_ids(still)}"] if still else []
        problems += [f"would break {_ids(new)}"] if new else []
        return FixOutcome(
            False, f"the fixed image {' and '.join(problems)}: {blocking.message}", targeted,
            role, fixed, after, rule_id=blocking.rule_id,
        )
    return FixOutcome(True, f"{' + '.join(fixed.applied) or 're-encoding'} resolves "
                      f"{', '.join(targeted)}", targeted, role, fixed, after)


def _ids(violations: Sequence[Violation]) -> str:
    return ", ".join(v.rule_id for v in violations)


def _considered_fix(image: _Image, role: Role) -> FixOutcome | None:
    """The fix to explain in the image's answer in `role` (module doc): the one tried in its
    role; for an alternate, else one tried as main and refused; else one not attempted in its
    role. A fix tried as main and kept is not shown on an alternate: it is not the image to use."""
    outcome = image.fixes.get(role)
    if outcome is not None:
        return outcome
    as_main = image.fixes.get("main")
    if role == "alternate" and as_main is not None and not as_main.accepted:
        return as_main
    verdict = image.verdicts[role]
    if not verdict.fixes or verdict.fixable:
        return None
    # Fix rules are violated, but so is a rule no fix resolves: fixing cannot make it compliant.
    holding = [v for v in verdict.violations if v.action not in ("fix", "approve")]
    return FixOutcome(
        False,
        f"not attempted: {_ids(holding)} also {'holds' if len(holding) == 1 else 'hold'} the "
        "image back and no fix resolves that, so the fixed image would not be compliant either",
        tuple(v.rule_id for v in verdict.violations if v.action == "fix"), role,
        rule_id=holding[0].rule_id,
    )


def _effective(image: _Image, role: Role) -> ImageVerdict:
    """The verdict that stands: as evaluated, with the fix rules fallen back if the fix failed."""
    verdict = image.verdicts[role]
    outcome = image.fixes.get(role)
    if verdict.fixable and (outcome is None or not outcome.accepted):
        return verdict.without_fixes()
    return verdict


def _quality_score(image: _Image, role: Role) -> float | None:
    """The score of what would be shown: the fixed image when its fix is kept."""
    outcome = image.fixes.get(role)
    if outcome is not None and outcome.accepted and outcome.fixed is not None:
        attributes = outcome.fixed.measured.attributes or {}
        return _float_or_none(attributes, "quality.score")
    return _float_or_none(image.measured.attributes, "quality.score")


def _float_or_none(attributes: dict[str, Any] | None, name: str) -> float | None:
    value = (attributes or {}).get(name)
    return float(value) if isinstance(value, int | float) else None


def _str_or_none(attributes: dict[str, Any] | None, name: str) -> str | None:
    value = (attributes or {}).get(name)
    return value if isinstance(value, str) else None


def _image_answer(
    image: _Image, role: Role, duplicate_of: str | None, include_fixed_images: bool
) -> schemas.ImageAssessment:
    measured = image.measured
    assert measured.attributes is not None
    score = measured.attributes.get("quality.score")
    verdict = _effective(image, role)
    as_main = _effective(image, "main")
    outcome = _considered_fix(image, role)
    return schemas.ImageAssessment(
        image_id=measured.image_id,
        status="ok",
        attributes=measured.attributes,
        quality=(
            schemas.Quality(score=score, scorer=str(measured.attributes.get("quality.scorer")))
            if score is not None
            else None
        ),
        verdict=_verdict(verdict),
        action=verdict.action,
        eligible_as_main=as_main.compliant or as_main.fixable,
        # Why an alternate could not be the main image, in the same terms.
        verdict_as_main=_verdict(as_main) if role == "alternate" else None,
        fix=_fix_answer(outcome, include_fixed_images) if outcome is not None else None,
        duplicate_of=duplicate_of,
        detections=[
            schemas.Detection(kind=b.kind, label=b.label, score=b.score, box=b.box)
            for b in measured.boxes
        ],
        timings_ms=measured.timings_ms,
        batch_sizes=measured.batch_sizes,
    )


def _fix_answer(outcome: FixOutcome, include_image: bool) -> schemas.FixResult:
    fixed = outcome.fixed
    return schemas.FixResult(
        applied=list(fixed.applied) if fixed else [],
        resolved=list(outcome.targeted) if outcome.accepted else [],
        accepted=outcome.accepted,
        reason=outcome.reason,
        evaluated_as=outcome.role,
        targeted=list(outcome.targeted),
        rule_id=outcome.rule_id,
        not_applied=[
            schemas.FixNotApplied(fix=name, reason=why) for name, why in fixed.skipped
        ] if fixed else [],
        verdict=_verdict(outcome.verdict) if outcome.verdict is not None else None,
        image=(
            base64.b64encode(fixed.data).decode("ascii")
            if include_image and outcome.accepted and fixed is not None and fixed.data
            else None
        ),
        width=fixed.width if fixed else None,
        height=fixed.height if fixed else None,
    )


def _verdict(verdict: ImageVerdict) -> schemas.Verdict:
    return schemas.Verdict(
        evaluated_as=verdict.role,
        violations=[
            schemas.Violation(
                rule_id=v.rule_id,
                severity=v.severity,
                attribute=v.attribute,
                measured=v.measured,
                threshold=_plain(v.threshold),
                op=v.op,
                message=v.message,
            )
            for v in verdict.violations
        ],
        not_evaluated=[n.rule_id for n in verdict.not_evaluated],
    )


def _error_answer(image: MeasuredImage) -> schemas.ImageAssessment:
    assert image.error is not None
    return schemas.ImageAssessment(
        image_id=image.image_id, status="error", error=schemas.ErrorBody(**image.error)
    )


def _plain(threshold: Any) -> Any:
    return list(threshold) if isinstance(threshold, tuple) else threshold
