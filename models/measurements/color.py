"""color.grayscale: an image without colour, also when the grey is stored as RGB.

Per pixel, the channel spread max(R,G,B) - min(R,G,B) is 0 for any grey. JPEG chroma noise lifts
it a little; a coloured product lifts its mean or, when small, its high percentile.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.measurements.thresholds import MeasurementThresholds


def channel_spread_histogram(rgb: np.ndarray) -> np.ndarray:
    """256-bin histogram of max(R,G,B) - min(R,G,B) over an H x W x 3 uint8 image."""
    red, green, blue = cv2.split(rgb)
    spread = cv2.subtract(
        cv2.max(cv2.max(red, green), blue), cv2.min(cv2.min(red, green), blue)
    )
    return np.bincount(spread.ravel(), minlength=256).astype(np.float64)


def is_grayscale(histogram: np.ndarray, thresholds: MeasurementThresholds) -> bool:
    total = float(histogram.sum())
    if total == 0:
        return True
    mean = float(histogram @ np.arange(histogram.size)) / total
    cumulative = np.cumsum(histogram) / total
    high = int(np.searchsorted(cumulative, thresholds.grayscale_spread_percentile / 100.0))
    return (
        mean <= thresholds.grayscale_mean_spread_max
        and high <= thresholds.grayscale_high_spread_max
    )
