"""file.*: what the file itself says, before any pixel analysis."""

from __future__ import annotations

from curator.contracts.vocabulary import AttributeValue
from models.decode import DecodedImage


def file_attributes(decoded: DecodedImage) -> dict[str, AttributeValue]:
    width, height = decoded.width, decoded.height
    return {
        "file.format": decoded.format,
        "file.bytes": int(decoded.n_bytes),
        "file.width": width,
        "file.height": height,
        "file.longest_side": max(width, height),
        "file.aspect_ratio": width / height,
        "file.color_mode": decoded.color_mode,
        "file.animated": bool(decoded.animated),
        "file.dpi": None if decoded.dpi is None else float(decoded.dpi),
    }
