"""The batch stages' own logic, without Ray: reading files under the online limits, and a stage
that breaks on one image failing that image only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from curator.contracts.errors import ImageError
from curator.core.measured import MeasuredImage
from graphs.batch_sources import read_image_file
from graphs.batch_stages import run_isolated


@pytest.mark.parametrize(("name", "size", "code"), [
    ("missing.jpg", None, "file_unreadable"),
    ("folder", "dir", "file_unreadable"),
    ("huge.jpg", 10_001, "image_too_large"),
], ids=["missing", "a-folder", "over-the-limit"])
def test_files_that_cannot_be_used(tmp_path: Path, name: str, size: int | str | None,
                                   code: str) -> None:
    path = tmp_path / name
    if size == "dir":
        path.mkdir()
    elif isinstance(size, int):
        path.write_bytes(b"x" * size)
    with pytest.raises(ImageError) as refused:
        read_image_file(str(path), max_bytes=10_000)
    assert refused.value.code == code


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x" * 10_000)
    assert read_image_file(str(tmp_path / "a.jpg"), max_bytes=10_000) == b"x" * 10_000


def test_a_stage_that_breaks_on_one_image_fails_that_image_only() -> None:
    calls: list[int] = []

    def stage(items: Sequence[MeasuredImage]) -> list[MeasuredImage]:
        calls.append(len(items))
        if any(item.image_id == "bad" for item in items):
            raise RuntimeError("the model cannot take this image")
        return [replace(item, attributes={"seen": True}) for item in items]

    items = [MeasuredImage(image_id, attributes={}) for image_id in ("a", "bad", "c")]
    done = run_isolated(stage, items, "test stage")
    assert [item.image_id for item in done] == ["a", "bad", "c"]
    assert [item.attributes for item in done] == [{"seen": True}, None, {"seen": True}]
    assert done[1].error is not None and done[1].error["code"] == "stage_failed"
    assert calls == [3, 1, 1, 1]  # the batch, then each image alone
