"""hash.*: an exact pixel hash and a perceptual hash for near-duplicates."""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
from PIL import Image


def pixel_md5(rgb: np.ndarray) -> str:
    """MD5 of the shape and the decoded pixels: equal for the same picture in any container."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update("x".join(str(n) for n in rgb.shape).encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def perceptual_hash(image: np.ndarray) -> str:
    """64-bit DCT hash (imagehash.phash) of a grey (H x W) or RGB image, as 16 hex chars.

    The preprocessor passes the grey analysis copy of the content inside any border: phash
    shrinks to 32x32 itself, so the input size barely matters and a small one is cheap, and a
    picture with and without an added frame hashes alike.
    """
    return str(imagehash.phash(Image.fromarray(image)))
