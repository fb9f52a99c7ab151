"""What a detector returns for one image, and the shape every detector shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from curator.contracts.vocabulary import AttributeValue
from models.preprocess import ModelInputs
from models.runtime.base import RuntimeInfo

FrameBox = tuple[float, float, float, float]  # x0, y0, x1, y1 in 0..1 units of the whole frame


@dataclass(frozen=True)
class DetectedBox:
    kind: str  # "text", "person"
    label: str  # e.g. "overlay", "on_product", "FACE_FEMALE"
    score: float
    box: FrameBox


@dataclass(frozen=True)
class Detections:
    attributes: dict[str, AttributeValue]  # vocabulary names of the extractor stage only
    boxes: list[DetectedBox] = field(default_factory=list)


class Detector(Protocol):
    @property
    def runtime_info(self) -> RuntimeInfo: ...

    def detect(self, batch: Sequence[ModelInputs]) -> list[Detections]:
        """One forward pass for the whole batch; the answer for an image never depends on the
        other images in its batch (fixed canvas per image, so padding cannot leak)."""
        ...
