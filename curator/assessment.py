"""From measured images to the listing answer: verdicts, actions and the main image.

Plain Python shared by the ingress deployment, `curator assess` and the benchmark's in-process
limit, so the online graph and every offline path decide identically.

Every image is evaluated twice, as a main image and as an alternate: selection ranks images by
their verdict *as main*, then the winner is reported with its main verdict and every other image
with its alternate verdict (the looser rules that really apply to it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator import schemas
from curator.errors import ImageError
from rules import Candidate, ImageVerdict, Policy, evaluate, load_policy, select_main_image
from rules.evaluate import Role

if TYPE_CHECKING:
    from models.detectors.base import DetectedBox
    from models.preprocess import ModelInputs

CONTROL_VARIANT = "control"


@dataclass(frozen=True)
class MeasuredImage:
    """One image as it travels the stages: attributes so far, or the error that stopped it.

    Crosses process boundaries: scalars, plus the compact uint8 model inputs that only travel
    between stages (the last stage drops them before the answer goes back to the ingress)."""

    image_id: str
    attributes: dict[str, Any] | None = None
    timings_ms: dict[str, float] | None = None
    error: dict[str, Any] | None = None
    model_inputs: ModelInputs | None = None
    boxes: tuple[DetectedBox, ...] = ()
    batch_sizes: dict[str, int] | None = None  # stage -> size of the batch this image ran in

    @property
    def ok(self) -> bool:
        return self.error is None and self.attributes is not None

    def with_stage(
        self,
        stage: str,
        attributes: dict[str, Any],
        elapsed_ms: float,
        batch_size: int,
        boxes: Sequence[DetectedBox] = (),
        keep_model_inputs: bool = True,
    ) -> MeasuredImage:
        assert self.attributes is not None
        return replace(
            self,
            attributes={**self.attributes, **attributes},
            timings_ms={**(self.timings_ms or {}), stage: elapsed_ms},
            boxes=self.boxes + tuple(boxes),
            batch_sizes={**(self.batch_sizes or {}), stage: batch_size},
            model_inputs=self.model_inputs if keep_model_inputs else None,
        )


def measure_locally(
    data: bytes, image_id: str, preprocessor: Any = None, keep_model_inputs: bool = False
) -> MeasuredImage:
    """The Preprocess stage in this process (CLI, benchmark); the same class the replica runs."""
    from models.preprocess import Preprocessor

    try:
        result = (preprocessor or Preprocessor()).run(data, image_id=image_id)
    except ImageError as error:
        error.image_id = image_id
        return MeasuredImage(image_id=image_id, error=error.to_dict())
    return MeasuredImage(
        image_id,
        attributes=result.attributes,
        timings_ms={"preprocess": result.timings_ms.get("total", 0.0)},
        model_inputs=result.model_inputs if keep_model_inputs else None,
    )


class ListingAssessor:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    @classmethod
    def from_policy_file(cls, path: Path) -> ListingAssessor:
        return cls(load_policy(path))

    @property
    def policy_id(self) -> str:
        return self.policy.id

    @property
    def policy_version(self) -> str:
        return self.policy.version

    def assess(
        self,
        *,
        listing_id: str,
        category: str,
        marketplace: str,
        images: Sequence[MeasuredImage],
        roles: Sequence[Role | None],
    ) -> schemas.AssessResponse:
        verdicts: dict[str, dict[Role, ImageVerdict]] = {}
        candidates: list[Candidate] = []
        for position, (image, role_hint) in enumerate(zip(images, roles, strict=True)):
            if image.attributes is None:
                continue
            as_main = evaluate(self.policy, image.attributes, "main")
            verdicts[image.image_id] = {
                "main": as_main,
                "alternate": evaluate(self.policy, image.attributes, "alternate"),
            }
            candidates.append(
                Candidate(
                    image_id=image.image_id,
                    position=position,
                    role_hint=role_hint,
                    verdict=as_main,
                    quality_score=image.attributes.get("quality.score"),
                )
            )
        selection = select_main_image(candidates)
        answers = []
        for image in images:
            if image.attributes is None:
                answers.append(_error_answer(image))
                continue
            role: Role = "main" if image.image_id == selection.main_image_id else "alternate"
            answers.append(_image_answer(image, verdicts[image.image_id], role))
        return schemas.AssessResponse(
            listing_id=listing_id,
            decision_id=str(uuid.uuid4()),
            category=category,
            marketplace=marketplace,
            policy_version=self.policy.version,
            variant=CONTROL_VARIANT,
            images=answers,
            selection=schemas.Selection(
                main_image_id=selection.main_image_id,
                order=list(selection.order),
                main_image_compliant=selection.main_image_compliant,
                reason=selection.reason,
            ),
        )


def _image_answer(
    image: MeasuredImage, verdicts: dict[Role, ImageVerdict], role: Role
) -> schemas.ImageAssessment:
    assert image.attributes is not None
    score = image.attributes.get("quality.score")
    as_main = verdicts["main"]
    return schemas.ImageAssessment(
        image_id=image.image_id,
        status="ok",
        attributes=image.attributes,
        quality=(
            schemas.Quality(score=score, scorer=str(image.attributes.get("quality.scorer")))
            if score is not None
            else None
        ),
        verdict=_verdict(verdicts[role]),
        action=verdicts[role].action,
        eligible_as_main=as_main.compliant,
        # Why an alternate could not be the main image, in the same terms.
        verdict_as_main=_verdict(as_main) if role == "alternate" else None,
        detections=[
            schemas.Detection(kind=b.kind, label=b.label, score=b.score, box=b.box)
            for b in image.boxes
        ],
        timings_ms=image.timings_ms,
        batch_sizes=image.batch_sizes,
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
