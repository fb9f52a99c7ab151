"""Nudity only: NudeNet 3.4.2's YOLOv8n (`320n.onnx`), with our own pre/post-processing.

Produces `people.nudity` and `people.nudity_score`, and one `DetectedBox(kind="nudity")` per
explicit detection. Whether a person is in the picture at all is not this model's business: it
finds exposed and covered body parts, not people (hands, back views and clothed people escape
it), so `people.person` comes from the person detectors (models/detectors/people.py).

The model's 18 classes fall into four families; only the explicit one makes nudity:
- explicit: genitalia (female and male), female breast, buttocks and anus, EXPOSED.
- bare: the other EXPOSED classes (male breast, belly, armpits, feet): skin, not nudity; shirtless
  men in swimwear and sportswear are ordinary listings on the marketplaces we serve.
- face and covered (every *_COVERED class): ignored here.

Licence: the nudenet package is MIT, but the weights are an Ultralytics YOLOv8 export whose ONNX
metadata declares AGPL-3.0 (see models/artifacts.py and the README). No permissive model covers
the no-nudity rule yet, so "nudity" stays in the default extractor models; an operator who may
not ship AGPL weights removes it from `extractor_models`, and image.people.no_nudity then
reports "not evaluated" rather than guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from curator.contracts.vocabulary import AttributeValue
from models.artifacts import NUDITY_DETECTOR
from models.detectors import yolo
from models.detectors.base import DetectedBox, Detections
from models.preprocess import ModelInputs
from models.runtime.base import InferenceRuntime, RuntimeInfo

logger = logging.getLogger(__name__)

BOX_KIND = "nudity"


class Family(StrEnum):
    FACE = "face"
    EXPLICIT = "explicit"
    BARE = "bare"
    COVERED = "covered"


# The model's classes in class-id order, as the weights were trained; checked against the ONNX
# metadata at load, because a reordered table would silently swap labels.
MODEL_CLASSES: tuple[tuple[str, Family], ...] = (
    ("FEMALE_GENITALIA_COVERED", Family.COVERED),
    ("FACE_FEMALE", Family.FACE),
    ("BUTTOCKS_EXPOSED", Family.EXPLICIT),
    ("FEMALE_BREAST_EXPOSED", Family.EXPLICIT),
    ("FEMALE_GENITALIA_EXPOSED", Family.EXPLICIT),
    ("MALE_BREAST_EXPOSED", Family.BARE),
    ("ANUS_EXPOSED", Family.EXPLICIT),
    ("FEET_EXPOSED", Family.BARE),
    ("BELLY_COVERED", Family.COVERED),
    ("FEET_COVERED", Family.COVERED),
    ("ARMPITS_COVERED", Family.COVERED),
    ("ARMPITS_EXPOSED", Family.BARE),
    ("FACE_MALE", Family.FACE),
    ("BELLY_EXPOSED", Family.BARE),
    ("MALE_GENITALIA_EXPOSED", Family.EXPLICIT),
    ("ANUS_COVERED", Family.COVERED),
    ("FEMALE_BREAST_COVERED", Family.COVERED),
    ("BUTTOCKS_COVERED", Family.COVERED),
)
CLASS_NAMES: tuple[str, ...] = tuple(name for name, _ in MODEL_CLASSES)
CLASS_FAMILIES: tuple[Family, ...] = tuple(family for _, family in MODEL_CLASSES)


@dataclass(frozen=True)
class NudityDetectorSettings:
    """Thresholds of the nudity detector. Scores are the model's per-class sigmoid, 0..1.

    explicit 0.50: no labelled set of this project holds an explicit photo, so the bar is set from
    the false-positive side only: on product photos the explicit classes reached 0.41 (a hand
    holding USB sticks), 0.31 (a gym ball) and 0.30 (a tablet), and 0.5 keeps a margin over them.
    Revisit on a labelled moderation set; a rule wanting a stricter bar compares
    `people.nudity_score`.
    """

    explicit_min_score: float = 0.50
    # IoU above which a lower-scored box of the same class is a duplicate (NudeNet's own 0.45).
    nms_iou: float = 0.45
    max_boxes_per_image: int = 100  # bounds post-processing on pathological inputs
    input_size_px: int = 320  # side of the square canvas, as the weights were trained

    def __post_init__(self) -> None:
        for name in ("explicit_min_score", "nms_iou"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.max_boxes_per_image < 1:
            raise ValueError(f"max_boxes_per_image must be >= 1, got {self.max_boxes_per_image}")
        if self.input_size_px < 32 or self.input_size_px % 32:
            raise ValueError(f"input_size_px must be a multiple of 32, got {self.input_size_px}")

    def class_min_scores(self) -> np.ndarray:
        """Per class id, the score a detection needs; the classes that are not explicit never
        qualify (a score is at most 1)."""
        return np.where(_IS_EXPLICIT, self.explicit_min_score, np.inf).astype(np.float32)


def check_class_names(found: Sequence[str]) -> None:
    """Raise ModelMetadataError unless the model's classes are exactly `CLASS_NAMES`, in order."""
    if tuple(found) == CLASS_NAMES:
        return
    differences = [
        f"id {index}: model {model!r}, expected {ours!r}"
        for index, (model, ours) in enumerate(zip(found, CLASS_NAMES, strict=False))
        if model != ours
    ]
    if len(found) != len(CLASS_NAMES):
        differences.append(f"model has {len(found)} classes, expected {len(CLASS_NAMES)}")
    raise yolo.ModelMetadataError(
        "nudity detector class table does not match the model: " + "; ".join(differences)
    )


_IS_EXPLICIT = np.array([family is Family.EXPLICIT for family in CLASS_FAMILIES])


class NudityDetector:
    """`Detector` for nudity; plain class, no Ray.

    `class_names` defaults to the `names` metadata of the artifact's ONNX file; pass them when
    the runtime was built from elsewhere. `settings` may be replaced between batches
    (reconfigure): it is read once per `detect` call.
    """

    input_name = "images"
    output_name = "output0"

    def __init__(
        self,
        runtime: InferenceRuntime,
        settings: NudityDetectorSettings = NudityDetectorSettings(),
        class_names: Sequence[str] | None = None,
        onnx_path: Path | None = None,
    ) -> None:
        if class_names is None:
            class_names = yolo.read_class_names(onnx_path or NUDITY_DETECTOR.path())
        check_class_names(class_names)
        self.runtime = runtime
        self.settings = settings
        logger.info("nudity detector on %s", runtime.info)

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self.runtime.info

    def detect(self, batch: Sequence[ModelInputs]) -> list[Detections]:
        """One forward pass for the whole batch; per image, attributes and boxes."""
        if not batch:
            return []
        settings = self.settings
        tensor, placements = yolo.letterbox_batch(
            [inputs.rgb for inputs in batch], settings.input_size_px
        )
        raw = self.runtime.run({self.input_name: tensor})[self.output_name]
        expected_rows = yolo.BOX_VALUES + len(CLASS_NAMES)
        if raw.ndim != 3 or raw.shape[:2] != (len(batch), expected_rows):
            raise yolo.ModelMetadataError(
                f"nudity detector output {raw.shape}, expected ({len(batch)}, {expected_rows}, "
                "anchors)"
            )
        min_scores = settings.class_min_scores()
        return [
            self._postprocess(raw[index], placements[index], min_scores, settings)
            for index in range(len(batch))
        ]

    def _postprocess(
        self,
        raw: np.ndarray,
        placement: yolo.Letterbox,
        min_scores: np.ndarray,
        settings: NudityDetectorSettings,
    ) -> Detections:
        candidates = yolo.decode(raw, min_scores)
        keep = yolo.nms(
            candidates.corners,
            candidates.scores,
            candidates.class_ids,
            settings.nms_iou,
            settings.max_boxes_per_image,
        )
        class_ids = candidates.class_ids[keep]
        scores = candidates.scores[keep]
        frame_boxes = placement.to_frame_units(candidates.corners[keep])
        attributes: dict[str, AttributeValue] = {
            "people.nudity": bool(keep.size),
            "people.nudity_score": float(scores.max()) if keep.size else 0.0,
        }
        boxes = [
            DetectedBox(
                kind=BOX_KIND,
                label=CLASS_NAMES[class_id],
                score=float(score),
                box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            )
            for class_id, score, box in zip(class_ids, scores, frame_boxes, strict=True)
        ]
        return Detections(attributes=attributes, boxes=boxes)
