"""graphs.batch_manifest: what a manifest may hold, and the message for what it may not. No Ray."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from graphs.batch_manifest import ManifestError, read_manifest
from tests.graphs.manifests import WRITERS, write_csv, write_jsonl

ROWS = [
    {"listing_id": "L-1", "image_id": "front", "path": "images/front.jpg", "role": "main"},
    {"listing_id": "L-1", "image_id": "back", "path": "/data/back.jpg", "category": "home"},
    {"listing_id": "L-2", "image_id": "only", "url": "https://cdn.example/only.jpg",
     "marketplace": "DE"},
]


@pytest.mark.parametrize("suffix", WRITERS, ids=WRITERS)
def test_each_format_reads_the_same(tmp_path: Path, suffix: str) -> None:
    manifest = read_manifest(WRITERS[suffix](tmp_path / f"manifest{suffix}", ROWS))
    assert manifest.to_pylist() == [
        {"listing_id": "L-1", "image_id": "front", "path": str(tmp_path / "images/front.jpg"),
         "url": None, "category": "default", "marketplace": "US", "role": "main",
         "image_index": 0},
        {"listing_id": "L-1", "image_id": "back", "path": "/data/back.jpg", "url": None,
         "category": "home", "marketplace": "US", "role": None, "image_index": 1},
        {"listing_id": "L-2", "image_id": "only", "path": None,
         "url": "https://cdn.example/only.jpg", "category": "default", "marketplace": "DE",
         "role": None, "image_index": 2},
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_numeric_ids_become_text(tmp_path: Path, suffix: str) -> None:
    rows = [{"listing_id": 1001, "image_id": 7, "path": "a.jpg"}]
    manifest = read_manifest(WRITERS[suffix](tmp_path / f"manifest{suffix}", rows))
    assert manifest.select(["listing_id", "image_id"]).to_pylist() == [
        {"listing_id": "1001", "image_id": "7"}]


def test_csv_ids_stay_text(tmp_path: Path) -> None:
    rows = [{"listing_id": "0042", "image_id": "007", "path": "a.jpg"}]
    manifest = read_manifest(write_csv(tmp_path / "manifest.csv", rows))
    assert manifest.select(["listing_id", "image_id"]).to_pylist() == [
        {"listing_id": "0042", "image_id": "007"}]


BAD: dict[str, tuple[list[dict[str, Any]], str]] = {
    "no listing_id column": ([{"image_id": "a", "path": "a.jpg"}],
                             "missing column(s) 'listing_id'"),
    "no path or url column": ([{"listing_id": "L", "image_id": "a"}], "'path or url'"),
    "unknown column": ([{"listing_id": "L", "image_id": "a", "path": "a.jpg", "catgory": "home"}],
                       "unknown column(s) 'catgory'"),
    "float ids": ([{"listing_id": 1.5, "image_id": "a", "path": "a.jpg"}],
                  "column 'listing_id' holds double; expected text or whole numbers"),
    "numeric category": ([{"listing_id": "L", "image_id": "a", "path": "a.jpg", "category": 3}],
                         "column 'category' holds int64; expected text"),
    "empty image_id": ([{"listing_id": "L", "image_id": "a", "path": "a.jpg"},
                        {"listing_id": "L", "image_id": "", "path": "b.jpg"}],
                       "column 'image_id' is empty in row 2"),
    "path and url": ([{"listing_id": "L", "image_id": "a", "path": "a.jpg",
                       "url": "https://cdn.example/a.jpg"}], "row 1 has both of columns"),
    "neither path nor url": ([{"listing_id": "L", "image_id": "a", "path": "a.jpg"},
                              {"listing_id": "L", "image_id": "b", "path": None}],
                             "row 2 has neither of columns 'path' and 'url'"),
    "unknown role": ([{"listing_id": "L", "image_id": "a", "path": "a.jpg", "role": "primary"}],
                     "column 'role' holds 'primary' in row 1; expected main, alternate or empty"),
}


@pytest.mark.parametrize("case", BAD, ids=BAD)
def test_a_bad_manifest_names_the_column(tmp_path: Path, case: str) -> None:
    rows, message = BAD[case]
    with pytest.raises(ManifestError, match=re.escape(message)):
        read_manifest(write_jsonl(tmp_path / "manifest.jsonl", rows))


def test_unusable_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"\.csv, \.jsonl .* or \.parquet, not \.txt"):
        read_manifest(tmp_path / "manifest.txt")
    with pytest.raises(ManifestError, match="No such file"):
        read_manifest(tmp_path / "absent.csv")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"listing_id": 1, "image_id": "a", "path": "a"}\n'
                     '{"listing_id": "x", "image_id": "b", "path": "b"}\n')
    with pytest.raises(ManifestError, match="listing_id"):
        read_manifest(mixed)
    header_only = tmp_path / "empty.csv"
    header_only.write_text("listing_id,image_id,path\n")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(header_only)
