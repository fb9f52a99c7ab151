"""The benchmark's listing images, kept in memory: real product photos from the dev set
(benchmarks/devset; the default), or seeded synthetic ones.

Synthetic: half white-background packshots (what a compliant main image looks like), half busy
backgrounds (what the measurements work hardest on), rendered once; nothing is written to disk.
Real: an even spread over the labelled dev set (every category and source, 120-1000 px, JPEG and
PNG as the sellers' files were), so latencies are those of photos the service will meet.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

IMAGE_SIZE_PX = (1000, 1000)
JPEG_QUALITY = 90
PRODUCT_FILL = 0.85  # share of the frame the product spans, linear
SHAPES: tuple[Literal["box", "bottle", "disc"], ...] = ("box", "bottle", "disc")


@dataclass(frozen=True)
class BenchImage:
    image_id: str
    background: str  # "white" or "busy" (for a dev-set photo: its white_background label)
    jpeg: bytes  # the encoded file: JPEG, or PNG for some dev-set photos

    @property
    def b64(self) -> str:
        return base64.b64encode(self.jpeg).decode("ascii")


def devset_images(count: int = 16) -> list[BenchImage]:
    """`count` dev-set photos spread evenly over the set (sorted by path, so runs compare)."""
    from curator.core.evaluation import load_devset

    labelled = load_devset()
    if not 2 <= count <= len(labelled):
        raise ValueError(f"need 2..{len(labelled)} dev-set images, not {count}")
    step = len(labelled) / count
    chosen = [labelled[int(index * step)] for index in range(count)]
    return [BenchImage(f"devset-{index:02d}",
                       "white" if image.labels["white_background"] else "busy",
                       image.path.read_bytes())
            for index, image in enumerate(chosen)]


def render_images(count: int = 16, size: tuple[int, int] = IMAGE_SIZE_PX) -> list[BenchImage]:
    """`count` distinct JPEGs, alternating white and busy backgrounds, seeded so runs compare."""
    # Imported late: the module list of a quick `--help` stays small.
    from tests.support import synthetic

    if count < 2:
        raise ValueError("need at least 2 images (one white, one busy)")
    images = []
    for index in range(count):
        background: Literal["white", "busy"] = "white" if index % 2 == 0 else "busy"
        picture = synthetic.render_product(
            size=size, fill=PRODUCT_FILL, background=background,
            shape=SHAPES[(index // 2) % len(SHAPES)], seed=index,
        )
        jpeg = synthetic.to_jpeg_bytes(picture, quality=JPEG_QUALITY)
        images.append(BenchImage(f"bench-{index:02d}-{background}", background, jpeg))
    sizes_kib = sorted(len(image.jpeg) / 1024 for image in images)
    logger.info(
        "rendered %d images %dx%d, JPEG q%d, %.0f-%.0f KiB",
        count, size[0], size[1], JPEG_QUALITY, sizes_kib[0], sizes_kib[-1],
    )
    return images
