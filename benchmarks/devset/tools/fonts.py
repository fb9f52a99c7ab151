"""The bold face the collect scripts write derived captions, badges and prices in (the same in
every part, so a re-run draws the same pixels)."""

from __future__ import annotations

from PIL import ImageFont


def bold_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)
