"""models.detectors.text_filter: text has strokes, objects do not (no model)."""

from __future__ import annotations

import cv2
import numpy as np

from models.detectors.db_postprocess import TextRegion
from models.detectors.text_filter import text_like
from models.detectors.text_settings import TextDetectorSettings

SETTINGS = TextDetectorSettings()  # canvas 640: strokes checked from 51 px, dropped from 115


def _canvas() -> np.ndarray:
    """White 640 x 640: a smooth grey ellipse (an object) left, black letter-like bars right."""
    rgb = np.full((640, 640, 3), 255, dtype=np.uint8)
    cv2.ellipse(rgb, (150, 320), (100, 40), 0, 0, 360, (120, 120, 120), -1)
    for x in range(380, 600, 18):  # strokes 6 px wide, 12 px apart: ~5 edges per 36 px
        rgb[290:350, x : x + 6] = 0
    return rgb


def _region(centre: tuple[float, float], size: tuple[float, float]) -> TextRegion:
    return TextRegion(rect=(centre, size, 0.0), score=0.9)


def test_a_smooth_object_is_dropped_and_strokes_are_kept() -> None:
    smooth = _region((150.0, 320.0), (210.0, 90.0))
    strokes = _region((490.0, 320.0), (230.0, 70.0))
    assert text_like([smooth, strokes], _canvas(), SETTINGS) == [strokes]


def test_small_regions_are_not_checked_and_huge_ones_never_pass() -> None:
    small = _region((150.0, 320.0), (120.0, 30.0))  # under 51 px: kept, even smooth
    huge = _region((490.0, 320.0), (300.0, 200.0))  # over 115 px: dropped, even striped
    assert text_like([small, huge], _canvas(), SETTINGS) == [small]
