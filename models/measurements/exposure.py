"""exposure.*: brightness of the product (not of its white background), from one luma histogram."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.measurements.thresholds import MeasurementThresholds

_LEVELS = np.arange(256, dtype=np.float64)


@dataclass(frozen=True)
class Exposure:
    mean: float  # mean luma, 0..1
    clipped_dark: float  # share of product pixels with luma <= clipped_dark_max_luma
    clipped_bright: float  # share of product pixels with luma >= clipped_bright_min_luma
    contrast: float  # std of luma, 0..1


def luma_histogram(grey: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """256-bin histogram of uint8 luma, restricted to `mask` (non-zero) when given."""
    hist = cv2.calcHist([grey], [0], mask, [256], [0, 256])
    return hist.ravel().astype(np.float64)


def measure_exposure(histogram: np.ndarray, thresholds: MeasurementThresholds) -> Exposure:
    total = float(histogram.sum())
    if total == 0:
        return Exposure(0.0, 0.0, 0.0, 0.0)
    mean = float(histogram @ _LEVELS) / total
    variance = max(0.0, float(histogram @ (_LEVELS - mean) ** 2) / total)
    dark = float(histogram[: thresholds.clipped_dark_max_luma + 1].sum()) / total
    bright = float(histogram[thresholds.clipped_bright_min_luma :].sum()) / total
    return Exposure(
        mean=min(1.0, mean / 255.0),
        clipped_dark=dark,
        clipped_bright=bright,
        contrast=min(1.0, variance**0.5 / 255.0),
    )
