"""DB (Differentiable Binarization) post-processing: a text probability map in, text rectangles out.

The network predicts, per pixel, the probability of lying in a text *kernel*: the text region
shrunk by a margin proportional to area / perimeter. Regions are read off the thresholded map,
scored by their mean probability, and grown back by the same kind of margin ("unclip"), which
restores the extent of the glyphs (Liao et al., "Real-time Scene Text Detection with
Differentiable Binarization", AAAI 2020; semantics as in PaddleOCR/rapidocr, our own code).

All coordinates here are canvas px of the map; mapping back to the frame is the caller's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.detectors.text_settings import TextDetectorSettings

# cv2.minAreaRect's ((centre x, centre y), (width, height), angle in degrees).
RotatedRect = tuple[tuple[float, float], tuple[float, float], float]

_DILATION_KERNEL = np.ones((2, 2), dtype=np.uint8)


@dataclass(frozen=True)
class TextRegion:
    rect: RotatedRect  # unclipped: the glyphs' extent, canvas px
    score: float  # mean text probability inside the kernel rectangle

    @property
    def corners(self) -> np.ndarray:
        """4 x 2 float32 corner points, canvas px."""
        return cv2.boxPoints(self.rect)

    @property
    def text_height(self) -> float:
        """The shorter side: the height of a line of text, whatever its angle."""
        return float(min(self.rect[1]))


def binarise(probabilities: np.ndarray, settings: TextDetectorSettings) -> np.ndarray:
    """N x H x W uint8 (0/1) text masks of a batch of N x H x W probability maps."""
    return (probabilities > settings.binary_threshold).astype(np.uint8)


def grow(rect: RotatedRect, margin: float) -> RotatedRect:
    """`rect` with `margin` added on every side (same centre and angle)."""
    (cx, cy), (width, height), angle = rect
    return (cx, cy), (width + 2 * margin, height + 2 * margin), angle


def grow_across(rect: RotatedRect, margin: float, min_line_aspect: float = 1.0) -> RotatedRect:
    """`rect` made thicker by `margin` on both long sides (not longer).

    A rectangle less than `min_line_aspect` times longer than thick has no clear direction; it
    is taken as horizontal text and grown above and below.
    """
    (cx, cy), (width, height), angle = rect
    if max(width, height) < min_line_aspect * min(width, height):
        radians = np.deg2rad(angle)
        width_runs_across = abs(np.cos(radians)) >= abs(np.sin(radians))
        grow_height = bool(width_runs_across)
    else:
        grow_height = width >= height
    if grow_height:
        return (cx, cy), (width, height + 2 * margin), angle
    return (cx, cy), (width + 2 * margin, height), angle


def unclip(rect: RotatedRect, ratio: float, max_margin: float = float("inf")) -> RotatedRect:
    """Grow a kernel rectangle by area * ratio / perimeter on every side, at most `max_margin`.

    PaddleOCR offsets the polygon with round joins and takes the minimum-area rectangle of the
    result; for a rectangle that is exactly this rectangle.
    """
    width, height = rect[1]
    perimeter = 2 * (width + height)
    if perimeter <= 0:
        return rect
    return grow(rect, min(width * height * ratio / perimeter, max_margin))


def box_score(probability: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability inside the polygon `corners` (PaddleOCR's "fast" score)."""
    height, width = probability.shape
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = corners - np.asarray([x0, y0], dtype=corners.dtype)
    cv2.fillPoly(mask, [shifted.round().astype(np.int32)], 1)
    return float(cv2.mean(probability[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def regions_from_map(
    probability: np.ndarray, bitmap: np.ndarray, settings: TextDetectorSettings
) -> list[TextRegion]:
    """Text regions of one H x W float32 probability map and its 0/1 `bitmap`."""
    if settings.dilate:
        bitmap = cv2.dilate(bitmap, _DILATION_KERNEL)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    max_margin = settings.unclip_max_fraction * settings.canvas_px
    regions: list[TextRegion] = []
    for contour in contours[: settings.max_candidates]:
        (cx, cy), (width, height), angle = cv2.minAreaRect(contour)
        kernel: RotatedRect = ((cx, cy), (width, height), angle)
        if min(kernel[1]) < settings.min_side_px:
            continue
        score = box_score(probability, cv2.boxPoints(kernel))
        if score < settings.box_threshold:
            continue
        rect = unclip(kernel, settings.unclip_ratio, max_margin)
        if min(rect[1]) < settings.min_side_px + 2:
            continue
        regions.append(TextRegion(rect=rect, score=score))
    return regions
