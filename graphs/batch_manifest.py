"""The batch mode's input: a manifest of images, one row each, checked before any model loads.

Columns: `listing_id`, `image_id`, and `path` (a local file; relative to the manifest's folder)
or `url` (fetched as `images[].url` is online), optional `category` ("default"), `marketplace`
("US") and `role` (main, alternate or empty). CSV, JSON Lines or Parquet, by extension.

The manifest is read on the driver rather than by Ray Data's parallel readers because a listing's
images must reach the rules in the manifest's order, as they would in a request (the order breaks
ties in main-image selection), and Ray Data's readers keep no row order. A manifest is small next
to its images (a million rows are some 100 MB), and reading it whole lets every structural problem
fail the job before any actor starts. Problems with one listing's request (an id that breaks the
API's pattern, too many images) are that listing's answer; problems with one image (an unreadable
file) are that image's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

ROLES = ("main", "alternate")


class ManifestError(ValueError):
    """The manifest cannot be used as it is; the message names the column (and row)."""


@dataclass(frozen=True)
class Column:
    name: str
    required: bool = False
    numbers_allowed: bool = False  # ids may be numbers in JSON and Parquet; they become text
    default: str | None = None


COLUMNS = {
    column.name: column
    for column in (
        Column("listing_id", required=True, numbers_allowed=True),
        Column("image_id", required=True, numbers_allowed=True),
        Column("path"),
        Column("url"),
        Column("category", default="default"),
        Column("marketplace", default="US"),
        Column("role"),
    )
}
# The manifest's row number (0-based): the order of a listing's images after the shuffle.
IMAGE_INDEX = "image_index"


def read_manifest(path: Path) -> pa.Table:
    """The manifest as a table of every column above plus `image_index`, every value text, the
    defaults filled in, `path` absolute; `ManifestError` for anything that would fail later."""
    table = _read_table(path)
    unknown = [name for name in table.column_names if name not in COLUMNS]
    if unknown:
        raise ManifestError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(COLUMNS)}")
    missing = [c.name for c in COLUMNS.values() if c.required and c.name not in table.column_names]
    if "path" not in table.column_names and "url" not in table.column_names:
        missing.append("path or url")
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    if table.num_rows == 0:
        raise ManifestError(f"{path}: no rows")
    columns = {column.name: _text_column(path, table, column) for column in COLUMNS.values()}
    _check_sources(path, columns["path"], columns["url"])
    _check_roles(path, columns["role"])
    columns["path"] = _absolute_paths(columns["path"], path.resolve().parent)
    columns[IMAGE_INDEX] = pa.array(range(table.num_rows), pa.int64())
    return pa.table(columns)


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            from pyarrow import csv

            # Every known column as text: CSV type inference would turn listing ids into ints
            # and drop leading zeros.
            options = csv.ConvertOptions(column_types={name: pa.string() for name in COLUMNS},
                                         strings_can_be_null=True)
            return csv.read_csv(path, convert_options=options)
        if suffix in (".jsonl", ".ndjson", ".json"):
            from pyarrow import json

            return json.read_json(path)
        if suffix in (".parquet", ".pq"):
            from pyarrow import parquet

            return parquet.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    raise ManifestError(f"{path}: a manifest is .csv, .jsonl (JSON Lines) or .parquet, "
                        f"not {suffix or 'a file without extension'}")


def _text_column(path: Path, table: pa.Table, column: Column) -> pa.Array:
    """The column as text with empty cells null (defaults filled); absent: all null/default."""
    if column.name not in table.column_names:
        values = pa.nulls(table.num_rows, pa.string())
    else:
        values = table.column(column.name).combine_chunks()
        kind = values.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        textual = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        if not (textual or pa.types.is_null(kind)
                or (column.numbers_allowed and pa.types.is_integer(kind))):
            expected = "text or whole numbers" if column.numbers_allowed else "text"
            raise ManifestError(f"{path}: column {column.name!r} holds {values.type}; "
                                f"expected {expected}")
        values = values.cast(pa.string())
        values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    if column.required:
        _require_values(path, column.name, values)
    if column.default is not None:
        values = values.fill_null(column.default)
    return values


def _require_values(path: Path, name: str, values: pa.Array) -> None:
    if values.null_count:
        raise ManifestError(f"{path}: column {name!r} is empty in row {_first(values.is_null())}")


def _check_sources(path: Path, paths: pa.Array, urls: pa.Array) -> None:
    both = pc.and_(paths.is_valid(), urls.is_valid())
    neither = pc.and_(paths.is_null(), urls.is_null())
    for problem, rows in (("both", both), ("neither", neither)):
        if pc.any(rows).as_py():
            raise ManifestError(f"{path}: row {_first(rows)} has {problem} of columns 'path' "
                                "and 'url'; give exactly one")


def _check_roles(path: Path, roles: pa.Array) -> None:
    wrong = pc.and_(roles.is_valid(), pc.invert(pc.is_in(roles, pa.array(ROLES))))
    if pc.any(wrong).as_py():
        row = _first(wrong)
        raise ManifestError(f"{path}: column 'role' holds {roles[row - 1].as_py()!r} in row "
                            f"{row}; expected main, alternate or empty")


def _absolute_paths(paths: pa.Array, base: Path) -> pa.Array:
    return pa.array([None if p is None else str(base / p) for p in paths.to_pylist()],
                    pa.string())


def _first(mask: pa.Array) -> int:
    """The first row (1-based, as a person counts the manifest's rows) where `mask` holds."""
    return int(pc.index(mask, True).as_py()) + 1
