"""Model inputs with something in them: product renders with overlay text, so the text map and
the detector's box regressions carry signal when two runtimes are compared."""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw, ImageFont

from tests.support import synthetic

WORDS = ("SALE -50%", "BEST SELLER", "FREE SHIPPING", "NEW")


def rendered_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    frames = []
    for index in range(count):
        image = synthetic.render_product(size=(width, height), seed=index,
                                         background="busy" if index % 2 else "white")
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=max(12, height // 10))
        draw.text((width * 0.08, height * (0.1 + 0.15 * (index % 4))), WORDS[index % len(WORDS)],
                  fill=(200, 20, 20), font=font)
        frames.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return frames


def text_batch(count: int, height: int, width: int) -> np.ndarray:
    """N x 3 x H x W float32, normalised as PP-OCR expects ((x / 255 - 0.5) / 0.5)."""
    frames = np.stack(rendered_frames(count, height, width)).astype(np.float32) / 255.0
    return np.ascontiguousarray(((frames - 0.5) / 0.5).transpose(0, 3, 1, 2))


def people_batch(count: int, side: int = 320) -> np.ndarray:
    """N x 3 x side x side float32 in 0..1, as NudeNet's YOLOv8 expects."""
    frames = np.stack(rendered_frames(count, side, side)).astype(np.float32) / 255.0
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
