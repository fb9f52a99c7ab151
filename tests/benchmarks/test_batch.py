"""The batch-mode benchmark's arithmetic and manifest (no Ray)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.batch import BatchJob, marginal_images_per_s, write_manifest
from benchmarks.render import render_batch
from graphs.batch_manifest import read_manifest


def job(images: int, wall_s: float) -> BatchJob:
    return BatchJob(images, wall_s, images, {"approve": images})


def test_marginal_rate_leaves_the_start_up_out() -> None:
    # 10 s of start-up, then 8 images/s: 64 images in 18 s, 256 in 42 s.
    jobs = [job(64, 18.0), job(256, 42.0)]
    assert [j.images_per_s for j in jobs] == [3.56, 6.1]
    assert marginal_images_per_s(jobs) == 8.0
    assert marginal_images_per_s(jobs[:1]) is None
    assert marginal_images_per_s([job(64, 18.0), job(256, 17.0)]) is None  # noise won


def test_manifest_is_one_listing_per_image_and_reads_back(tmp_path: Path) -> None:
    files = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for file in files:
        file.write_bytes(b"\xff\xd8")
    write_manifest(tmp_path / "m.csv", files, 5)
    manifest = read_manifest(tmp_path / "m.csv")
    assert manifest.num_rows == 5
    assert len(manifest.column("listing_id").unique()) == 5
    assert manifest.column("path").to_pylist() == [str(files[i % 2]) for i in range(5)]
    assert set(manifest.column("category").to_pylist()) == {"home"}


def test_render_compares_with_the_in_process_limit() -> None:
    batch = {"jobs": [job(64, 18.0).to_dict(), job(256, 42.0).to_dict()],
             "marginal_images_per_s": 8.0, "options": {"batch_size": 16}}
    text = "\n".join(render_batch(batch, 10.0))
    assert "0.36x" in text and "0.61x" in text
    assert "past start-up (marginal rate between the sizes): 8.0 images/s, 0.80x" in text
    assert "0.80x" not in "\n".join(render_batch(batch, None))
