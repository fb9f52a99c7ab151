"""What the fixes see: the image as `models.preprocess` measures it, so a fix judges the picture
the way the rules will after it. The content inside any border is shrunk by a whole factor to
the analysis size and segmented there; masks and boxes are mapped back to full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from models.measurements.background import Box, Segmentation, segment
from models.measurements.border import Border, detect_border
from models.measurements.scaling import shrink_by_whole_factor
from models.measurements.thresholds import MeasurementThresholds
from rules.fix_canvas import WHITE


@dataclass(frozen=True)
class Scene:
    """The image as `models.preprocess` measures it: content inside the border, segmented on a
    whole-factor analysis copy."""

    border: Border
    inner: tuple[int, int, int, int]  # y0, y1, x0, x1 of the content inside the border, full px
    analysis: np.ndarray  # the shrunk copy of the content
    segmentation: Segmentation

    @property
    def scale(self) -> tuple[float, float]:
        """Full px per analysis px, (y, x)."""
        y0, y1, x0, x1 = self.inner
        return (y1 - y0) / self.analysis.shape[0], (x1 - x0) / self.analysis.shape[1]

    def background_share_at(self, level: int) -> float:
        """Share of the background with every channel at least `level` (analysis copy)."""
        background = self.segmentation.background.astype(bool)
        near = near_white(self.analysis, level).astype(bool)
        return int(np.count_nonzero(near & background)) / max(1, int(np.count_nonzero(background)))


def analyse(rgb: np.ndarray, thresholds: MeasurementThresholds) -> Scene:
    border = detect_border(rgb, thresholds)
    y0, y1, x0, x1 = border.inner_box(*rgb.shape[:2])
    analysis = shrink_by_whole_factor(rgb[y0:y1, x0:x1], thresholds.analysis_max_side_px)
    return Scene(border, (y0, y1, x0, x1), analysis, segment(analysis, thresholds))


def full_resolution_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def full_resolution_box(scene: Scene, box: Box) -> Box:
    """`box` of the analysis copy in full-resolution px of the whole image, rounded outwards."""
    ax0, ay0, ax1, ay1 = box
    y0, y1, x0, x1 = scene.inner
    scale_y, scale_x = scene.scale
    return (
        x0 + math.floor(ax0 * scale_x), y0 + math.floor(ay0 * scale_y),
        min(x1, x0 + math.ceil(ax1 * scale_x)), min(y1, y0 + math.ceil(ay1 * scale_y)),
    )


def near_white(rgb: np.ndarray, level: int) -> np.ndarray:
    """uint8 mask, 255 where every channel is at least `level`."""
    return cv2.inRange(rgb, (level, level, level), (WHITE, WHITE, WHITE))
