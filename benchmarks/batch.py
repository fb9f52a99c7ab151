"""The batch mode's throughput (`curator batch`, graphs/batch.py) on the benchmark's images.

Each size is one whole job on a private local Ray, as a user runs it: actor start-up and model
loading included. Two sizes also give the steady state without the start-up, the marginal rate
(N2 - N1) / (T2 - T1): what a job of millions of images runs at. The images are the
benchmark's 16 JPEGs, cycled, one per listing (`category: home`, `marketplace: US`).
"""

from __future__ import annotations

import csv
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.images import BenchImage
from graphs.batch_options import BatchOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchJob:
    images: int
    wall_s: float  # first actor starting to last answer written
    images_ok: int  # images answered without an error
    actions: dict[str, int]

    @property
    def images_per_s(self) -> float:
        return round(self.images / self.wall_s, 2) if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": self.images_per_s}


def marginal_images_per_s(jobs: Sequence[BatchJob]) -> float | None:
    """The rate past start-up, from the smallest and the largest job; None without two sizes
    or when the larger job was not slower (noise swamped the difference)."""
    if len({job.images for job in jobs}) < 2:
        return None
    small = min(jobs, key=lambda job: job.images)
    large = max(jobs, key=lambda job: job.images)
    extra_s = large.wall_s - small.wall_s
    return round((large.images - small.images) / extra_s, 2) if extra_s > 0 else None


def write_manifest(path: Path, files: Sequence[Path], size: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["listing_id", "image_id", "path", "category", "marketplace"])
        for index in range(size):
            writer.writerow([f"bench-{size}-{index}", "front", files[index % len(files)],
                             "home", "US"])


def measure_batch(images: Sequence[BenchImage], config: Path, sizes: Sequence[int],
                  options: BatchOptions = BatchOptions()) -> dict[str, Any]:  # noqa: B008 - frozen
    import ray

    from graphs.batch import BatchSettings, run_batch
    from graphs.batch_manifest import read_manifest

    settings = BatchSettings.from_serve_config(config)
    jobs: list[BatchJob] = []
    with tempfile.TemporaryDirectory(prefix="curator-bench-batch-") as workdir:
        folder = Path(workdir)
        files = []
        for image in images:
            files.append(folder / f"{image.image_id}.jpg")
            files[-1].write_bytes(image.jpeg)
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        try:
            for size in sizes:
                manifest_path = folder / f"manifest-{size}.csv"
                write_manifest(manifest_path, files, size)
                summary = run_batch(read_manifest(manifest_path), folder / f"answers-{size}",
                                    settings, options)
                counts = summary.counts
                job = BatchJob(size, round(summary.wall_s, 2),
                               counts.images - sum(counts.image_errors.values()),
                               dict(counts.actions))
                logger.info("batch of %d images: %.1f s, %.2f images/s, %d ok", size,
                            job.wall_s, job.images_per_s, job.images_ok)
                jobs.append(job)
        finally:
            ray.shutdown()
    return {
        "jobs": [job.to_dict() for job in jobs],
        "marginal_images_per_s": marginal_images_per_s(jobs),
        "options": asdict(options),
    }
