"""Text detector of the AttributeExtractor stage: PP-OCRv6 small (DBNet) -> text.* attributes.

Each image is letterboxed on its own into a canvas (scaled so its longest side fills the
canvas's, padded at the right and bottom with the colour of its own outer edge, so the padding
continues the background and adds no edge that looks like a stroke). The canvas's longest side
is fixed (`canvas_px`); with `fit_canvas` its other side is the image's own, rounded up to the
network's stride, so a 4:3 photo costs 3/4 of a square canvas's compute instead of paying for
padding. Nothing about an image's canvas depends on the other images of its batch, so its answer
does not either: a batch is one forward pass per canvas shape in it.

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
STRIDE_PX = 32  # the network downsamples 32x: canvas sides are multiples of it
# Sub-pixel precision of the polygons rasterised for area fractions (cv2.fillPoly `shift`).
_FILL_SHIFT_BITS = 4


@dataclass(frozen=True)
class Letterbox:
    """Where an image sits on its canvas: at the top-left corner, `scale` canvas px per frame px."""

    scale: float
    height: int  # canvas px covered by the image
    width: int


def _placed(height: int, width: int, side: int) -> tuple[float, int, int]:
    """Scale and placed size of an H x W image whose longest side is drawn `side` px long."""
    scale = side / max(height, width)
    return scale, min(side, max(1, round(height * scale))), min(side, max(1, round(width * scale)))


def canvas_shape(height: int, width: int, settings: TextDetectorSettings) -> tuple[int, int]:
    """(rows, columns) of the canvas an H x W image is letterboxed into."""
    side = settings.canvas_px
    if not settings.fit_canvas:
        return side, side
    _, placed_h, placed_w = _placed(height, width, side)
    return _round_up(placed_h, STRIDE_PX), _round_up(placed_w, STRIDE_PX)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def letterbox(rgb: np.ndarray, canvas: np.ndarray) -> Letterbox:
    """Draw H x W x 3 uint8 `rgb` into `canvas` (rows x columns x 3 uint8, overwritten whole),
    its longest side as long as the canvas's longest side."""
    height, width = rgb.shape[:2]
    scale, placed_h, placed_w = _placed(height, width, max(canvas.shape[:2]))
    placed_h, placed_w = min(placed_h, canvas.shape[0]), min(placed_w, canvas.shape[1])
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
        by_shape: dict[tuple[int, int], list[int]] = {}
        for index, inputs in enumerate(batch):
            height, width = inputs.rgb.shape[:2]
            shape = canvas_shape(height, width, self.settings)
            by_shape.setdefault(shape, []).append(index)
        found: dict[int, Detections] = {}
        for shape, indices in by_shape.items():
            found.update(zip(indices, self._detect_on(shape, [batch[i] for i in indices]),
                             strict=True))
        return [found[index] for index in range(len(batch))]

    def _detect_on(self, shape: tuple[int, int], batch: Sequence[ModelInputs]) -> list[Detections]:
        """One forward pass over `batch`, every image on a canvas of `shape`."""
        canvases = np.empty((len(batch), *shape, 3), dtype=np.uint8)
        placed = [letterbox(inputs.rgb, canvas) for inputs, canvas in
                  zip(batch, canvases, strict=True)]
        outputs = self._runtime.run({INPUT_NAME: normalise(canvases)})
        probabilities = self._probabilities(outputs, (len(batch), 1, *shape))
        bitmaps = binarise(probabilities, self.settings)
        return [
            self._post_process(inputs, spot, canvases[i], probabilities[i], bitmaps[i])
            for i, (inputs, spot) in enumerate(zip(batch, placed, strict=True))
        ]

    @staticmethod
    def _probabilities(outputs: dict[str, np.ndarray], expected: tuple[int, ...]) -> np.ndarray:
        """N x rows x columns float32 probability maps from the runtime's single output."""
        if len(outputs) != 1:
            raise RuntimeError(f"text detector: expected one output, got {sorted(outputs)}")
        (maps,) = outputs.values()
        if maps.shape != expected:
            raise RuntimeError(f"text detector: output shape {maps.shape}, expected {expected}")
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
