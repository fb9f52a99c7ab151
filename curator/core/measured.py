"""One image as it travels the stages, and the stages run in this process.

`MeasuredImage` is what every stage passes on (attributes so far, or the error that stopped
the image); `FixedMeasurement` is what a `Fixer` gives back. `measure_locally` and
`fix_locally` run the Preprocess stage and the fixes in this process: the Preprocess replica,
the Ray Data reader, `curator assess` and the tests all call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from curator.contracts.errors import CuratorError, ImageError
from rules.schema import FixRef

if TYPE_CHECKING:
    from models.detectors.base import DetectedBox
    from models.preprocess import ModelInputs, Preprocessor


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


def stage_failed(image_id: str) -> MeasuredImage:
    """The image's answer when a stage crashed on it or lost its replica (online) or actor
    (offline): that image fails, the rest of its listing is still assessed."""
    return MeasuredImage(
        image_id=image_id,
        error={
            "code": "stage_failed",
            "message": "the image could not be assessed; retry later",
            "image_id": image_id,
        },
    )


def measure_locally(
    data: bytes, image_id: str, preprocessor: Preprocessor | None = None,
    keep_model_inputs: bool = False,
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


@dataclass(frozen=True)
class FixedFile:
    """A fixed image file from a Preprocess replica, or the error that stopped the fix."""

    data: bytes | None = None
    applied: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    error: dict[str, Any] | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (fix, why): requested but did not apply


def fix_locally(
    data: bytes, fixes: Sequence[tuple[str, dict[str, Any]]],
    preprocessor: Preprocessor | None = None,
) -> FixedFile:
    """Apply fixes in this process (the Preprocess replica, the CLI), measuring the way
    `preprocessor` does; refusals and undecodable files become an error answer."""
    from models.preprocess import Preprocessor
    from rules.fixes import FixError, apply_fixes

    preprocessor = preprocessor or Preprocessor()
    try:
        fixed = apply_fixes(data, fixes, preprocessor.decode_limits, preprocessor.thresholds)
    except CuratorError as exc:  # FixError, ImageError
        skipped = exc.skipped if isinstance(exc, FixError) else ()
        return FixedFile(error=exc.to_dict(), skipped=skipped)
    return FixedFile(fixed.data, fixed.applied, fixed.width, fixed.height,
                     skipped=fixed.skipped)


@dataclass(frozen=True)
class FixedMeasurement:
    """What a `Fixer` gives back: the fixed file and its measurement, or why there is none."""

    measured: MeasuredImage
    data: bytes | None = None
    applied: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (fix, why): requested but did not apply

    @classmethod
    def of(cls, fixed: FixedFile, measured: MeasuredImage) -> FixedMeasurement:
        """The fixed file and the measurement of its data."""
        return cls(measured, fixed.data, fixed.applied, fixed.width, fixed.height, fixed.skipped)

    @classmethod
    def failed(cls, image_id: str, fixed: FixedFile) -> FixedMeasurement:
        """A fix that produced no file: its error, and the fixes that did not apply."""
        return cls(MeasuredImage(image_id=image_id, error=fixed.error), skipped=fixed.skipped)


class Fixer(Protocol):
    """Applies fixes to one image of the listing and measures the result through the stages."""

    async def __call__(self, image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement: ...
