"""Pixel geometry of the fixes that change the canvas (`pad_to_fill`, `downscale`): how large the
new canvas is, what is cropped, and where it lands on white. Plain arrays in and out; what to
crop was decided from the measurements (rules.fix_scene).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from models.measurements.background import Box
from rules.fix_params import PadToFillParams

WHITE = 255  # every margin and backdrop a fix paints is pure white


def canvas_size(box_w: int, box_h: int, params: PadToFillParams, floor: int) -> tuple[int, int]:
    """(width, height) where the box spans `fill_ratio` on its binding axis, at `aspect_ratio`,
    enlarged (white margin) to a longest side of at least `floor`."""
    height = max(box_h / params.fill_ratio, box_w / (params.fill_ratio * params.aspect_ratio))
    width = height * params.aspect_ratio
    enlarge = max(1.0, floor / max(width, height))
    return max(box_w, round(width * enlarge)), max(box_h, round(height * enlarge))


def crop_with_margin(
    rgb: np.ndarray, box: Box, inner: tuple[int, int, int, int], margin: int,
    room: tuple[int, int],
) -> tuple[np.ndarray, Box]:
    """(pixels, their box): `box` widened by `margin` px where the content and the canvas
    (`room` px, x and y, beside the box on each side) allow."""
    y0, y1, x0, x1 = inner
    margin_x, margin_y = min(margin, room[0]), min(margin, room[1])
    cx0, cy0 = max(x0, box[0] - margin_x), max(y0, box[1] - margin_y)
    cx1, cy1 = min(x1, box[2] + margin_x), min(y1, box[3] + margin_y)
    return rgb[cy0:cy1, cx0:cx1], (cx0, cy0, cx1, cy1)


def centre_on_white(
    crop: tuple[np.ndarray, Box], box: Box, canvas: tuple[int, int], max_side: int
) -> np.ndarray:
    """The crop on a white canvas with `box` centred. A canvas longer than `max_side` is made
    at that size, the crop shrunk to match (never allocated at full size)."""
    pixels, (cx0, cy0, _, _) = crop
    factor = min(1.0, max_side / max(canvas))
    if factor < 1.0:
        pixels = resize_to(pixels, max(1, round(pixels.shape[1] * factor)),
                           max(1, round(pixels.shape[0] * factor)))
    canvas_w, canvas_h = round(canvas[0] * factor), round(canvas[1] * factor)
    out = np.full((canvas_h, canvas_w, 3), WHITE, dtype=np.uint8)
    left = math.floor((canvas[0] - (box[2] - box[0])) / 2 * factor - (box[0] - cx0) * factor)
    top = math.floor((canvas[1] - (box[3] - box[1])) / 2 * factor - (box[1] - cy0) * factor)
    _paste(out, pixels, left, top)
    return out


def _paste(canvas: np.ndarray, pixels: np.ndarray, left: int, top: int) -> None:
    """Copy `pixels` onto `canvas` at (left, top), clipped to the canvas (rounding may push a
    margin pixel past it)."""
    y0, x0 = max(0, top), max(0, left)
    y1 = min(canvas.shape[0], top + pixels.shape[0])
    x1 = min(canvas.shape[1], left + pixels.shape[1])
    canvas[y0:y1, x0:x1] = pixels[y0 - top:y1 - top, x0 - left:x1 - left]


def resize_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))
