"""Skin-coloured share of a box: the check that corroborates a weak person reading.

A garment on a ghost mannequin has a person's outline, and a camera lens or a knitted beanie can
look like a face to a face detector, but neither shows skin. A real person nearly always does
somewhere: a face, a hand, a neck, an ankle. The rule is the classic fixed range in YCrCb
(Chai and Ngan, 1999): chroma Cr 133..173 and Cb 77..127, which covers light to dark skin alike
because skin tones differ mostly in luma, not chroma. It also takes in some beige, tan and pink
surfaces, so it only ever confirms a detection the models already made, never finds one alone.
"""

from __future__ import annotations

import cv2
import numpy as np

FloatBox = tuple[float, float, float, float]

CR_RANGE = (133, 173)
CB_RANGE = (77, 127)
MIN_LUMA = 40  # near-black pixels have unreliable chroma after JPEG


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean H x W mask of skin-coloured pixels of an H x W x 3 uint8 RGB image."""
    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    luma, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    return ((cr >= CR_RANGE[0]) & (cr <= CR_RANGE[1]) & (cb >= CB_RANGE[0]) & (cb <= CB_RANGE[1])
            & (luma > MIN_LUMA))


def skin_fraction(rgb: np.ndarray, box: FloatBox, inset: float = 0.0) -> float:
    """Share of skin-coloured pixels in `box` (0..1 frame units) of `rgb`, after trimming
    `inset` of the box's width and height from each side (a face box's corners are hair and
    background; its middle is the face). 0.0 for a box with no pixels."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * inset, (y1 - y0) * inset
    left, right = (int(np.clip(x * width, 0, width)) for x in (x0 + dx, x1 - dx))
    top, bottom = (int(np.clip(y * height, 0, height)) for y in (y0 + dy, y1 - dy))
    if right <= left or bottom <= top:
        return 0.0
    return float(skin_mask(rgb[top:bottom, left:right]).mean())
