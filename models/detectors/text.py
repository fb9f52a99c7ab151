"""Text detector of the AttributeExtractor stage: PP-OCRv6 small (DBNet) -> text.* attributes.

One forward pass per batch. Each image is letterboxed on its own into a fixed square canvas
(scaled so its longest side fills the canvas, padded at the right and bottom with the colour of
its own outer edge, so the padding continues the background and adds no edge that looks like a
stroke). Nothing about an image's canvas depends on the other images of its batch, so its
answer does not either.

Post-processing (`db_postprocess`) reads text rectangles off each probability map, limited to
the image's part of the canvas; `text_placement` decides for each whether it is overlay (on the
background or a graphic of its own) or print on the product.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from curator.contracts.vocabulary import AttributeValue
from models.detectors.base import DetectedBox, Detections, FrameBox
from models.detectors.db_postprocess import RotatedRect, TextRegion, binarise, regions_from_map
from models.detectors.text_filter import text_like
from models.detectors.text_placement import place, surroundings
from models.detectors.text_settings import TextDetectorSettings
from models.preprocess import ModelInputs
from models.runtime.base import InferenceRuntime, RuntimeInfo

logger = logging.getLogger(__name__)

INPUT_NAME = "x"  # models.artifacts.TEXT_DETECTOR.input_name
# Sub-pixel precision of the polygons rasterised for area fractions (cv2.fillPoly `shift`).
_FILL_SHIFT_BITS = 4


@dataclass(frozen=True)
class Letterbox:
    """Where an image sits on its canvas: at the top-left corner, `scale` canvas px per frame px."""

    scale: float
    height: int  # canvas px covered by the image
    width: int


def letterbox(rgb: np.ndarray, canvas: np.ndarray) -> Letterbox:
    """Draw H x W x 3 uint8 `rgb` into `canvas` (S x S x 3 uint8, overwritten whole)."""
    side = canvas.shape[0]
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    placed_h = min(side, max(1, round(height * scale)))
    placed_w = min(side, max(1, round(width * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    edge = np.concatenate((rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]))
    canvas[:] = np.median(edge, axis=0).astype(np.uint8)
    if (placed_h, placed_w) == (height, width):
        canvas[:height, :width] = rgb
    else:
        canvas[:placed_h, :placed_w] = cv2.resize(
            rgb, (placed_w, placed_h), interpolation=interpolation
        )
    # Exact along the longest side; the other is rounded to whole px (under 0.1 % off).
    return Letterbox(scale=scale, height=placed_h, width=placed_w)


def normalise(canvases: np.ndarray) -> np.ndarray:
    """N x S x S x 3 uint8 RGB -> N x 3 x S x S float32, (pixel / 255 - 0.5) / 0.5."""
    batch = canvases.transpose(0, 3, 1, 2).astype(np.float32)
    batch *= 1.0 / 127.5
    batch -= 1.0
    return batch


def _frame_rect(region: TextRegion, placed: Letterbox) -> RotatedRect:
    """A canvas-px rectangle in frame px (the canvas is the frame, scaled, at the origin)."""
    (cx, cy), (width, height), angle = region.rect
    s = placed.scale
    return (cx / s, cy / s), (width / s, height / s), angle


def _frame_box(rect: RotatedRect, height: int, width: int) -> FrameBox:
    corners = cv2.boxPoints(rect)
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    return (
        float(np.clip(x0 / width, 0.0, 1.0)),
        float(np.clip(y0 / height, 0.0, 1.0)),
        float(np.clip(x1 / width, 0.0, 1.0)),
        float(np.clip(y1 / height, 0.0, 1.0)),
    )


def covered_fraction(rects: Sequence[RotatedRect], height: int, width: int) -> float:
    """Share of an H x W frame covered by the union of `rects` (frame px), clipped to it."""
    if not rects:
        return 0.0
    mask = np.zeros((height, width), dtype=np.uint8)
    factor = float(1 << _FILL_SHIFT_BITS)
    for rect in rects:
        # One call per rectangle: fillPoly given several polygons fills by the even-odd rule,
        # so an overlap would count as uncovered.
        corners = np.rint((cv2.boxPoints(rect) - 0.5) * factor).astype(np.int32)
        cv2.fillConvexPoly(mask, corners, 1, shift=_FILL_SHIFT_BITS)
    return float(np.count_nonzero(mask)) / (height * width)


class TextDetector:
    """text.* attributes and text boxes for a batch of model inputs, one forward pass."""

    def __init__(
        self,
        runtime: InferenceRuntime,
        settings: TextDetectorSettings = TextDetectorSettings(),  # noqa: B008 - frozen
    ) -> None:
        self._runtime = runtime
        self.settings = settings

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self._runtime.info

    def detect(self, batch: Sequence[ModelInputs]) -> list[Detections]:
        if not batch:
            return []
        side = self.settings.canvas_px
        canvases = np.empty((len(batch), side, side, 3), dtype=np.uint8)
        placed = [letterbox(inputs.rgb, canvas) for inputs, canvas in
                  zip(batch, canvases, strict=True)]
        outputs = self._runtime.run({INPUT_NAME: normalise(canvases)})
        probabilities = self._probabilities(outputs, len(batch))
        bitmaps = binarise(probabilities, self.settings)
        return [
            self._post_process(inputs, spot, canvases[i], probabilities[i], bitmaps[i])
            for i, (inputs, spot) in enumerate(zip(batch, placed, strict=True))
        ]

    def _probabilities(self, outputs: dict[str, np.ndarray], count: int) -> np.ndarray:
        """N x S x S float32 probability maps from the runtime's single output."""
        if len(outputs) != 1:
            raise RuntimeError(f"text detector: expected one output, got {sorted(outputs)}")
        (maps,) = outputs.values()
        side = self.settings.canvas_px
        if maps.shape != (count, 1, side, side):
            raise RuntimeError(
                f"text detector: output shape {maps.shape}, expected {(count, 1, side, side)}"
            )
        return maps[:, 0].astype(np.float32, copy=False)

    def _post_process(
        self,
        inputs: ModelInputs,
        placed: Letterbox,
        canvas: np.ndarray,
        probability: np.ndarray,
        bitmap: np.ndarray,
    ) -> Detections:
        height, width = inputs.rgb.shape[:2]
        # Only the image's own part of the canvas: nothing is read off the padding.
        regions = regions_from_map(
            np.ascontiguousarray(probability[: placed.height, : placed.width]),
            np.ascontiguousarray(bitmap[: placed.height, : placed.width]),
            self.settings,
        )
        regions = text_like(regions, canvas[: placed.height, : placed.width], self.settings)
        rects = [_frame_rect(region, placed) for region in regions]
        boxes = [_frame_box(rect, height, width) for rect in rects]
        placements = (
            place(rects, boxes, inputs.product_box,
                  surroundings(inputs.rgb, self.settings, inputs.content_box), self.settings,
                  [region.score for region in regions])
            if rects else []
        )
        overlay = [rect for rect, spot in zip(rects, placements, strict=True)
                   if spot.label == "overlay"]
        attributes: dict[str, AttributeValue] = {
            "text.box_count": len(rects),
            "text.area_fraction": covered_fraction(rects, height, width),
            "text.overlay": bool(overlay),
            "text.overlay_area_fraction": covered_fraction(overlay, height, width),
        }
        detected = [
            DetectedBox(kind="text", label=spot.label, score=region.score, box=box)
            for region, spot, box in zip(regions, placements, boxes, strict=True)
        ]
        order = sorted(range(len(detected)), key=lambda i: (detected[i].box[1], detected[i].box[0]))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("text: %d boxes, reasons %s", len(rects),
                         [placements[i].reason for i in order])
        return Detections(attributes=attributes, boxes=[detected[i] for i in order])
