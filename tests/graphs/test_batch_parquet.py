"""`curator batch --format parquet`: the answers' Parquet beside their JSON Lines, written by the
batch mode's datasink (no Ray: its write is called as a write task would call it)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.cli import batch as batch_cli
from curator.cli import main
from graphs.batch_options import BatchOptions
from graphs.batch_output import ListingAnswersDatasink
from graphs.batch_parquet import ANSWER_SCHEMA
from tests.graphs.manifests import write_csv

ASSESSED: dict[str, Any] = {
    "listing_id": "L-1", "decision_id": "d-1", "category": "home", "marketplace": "US",
    "policy_id": "base", "policy_version": "v1", "policy_set_version": "s1",
    "variant": "control",
    "images": [
        {"image_id": "a", "status": "ok", "action": "approve", "eligible_as_main": True,
         "quality": {"score": 0.8125, "scorer": "card-v1"},
         "verdict": {"evaluated_as": "main", "violations": [], "not_evaluated": []}},
        {"image_id": "b", "status": "ok", "action": "reject", "eligible_as_main": False,
         "quality": {"score": 0.25, "scorer": "card-v1"},
         "verdict": {"evaluated_as": "alternate", "not_evaluated": [], "violations": [
             {"rule_id": "no_overlay_text", "severity": "block", "attribute": "text_overlay",
              "measured": 0.4, "threshold": 0.05, "op": "<=", "message": "text"}]}},
        {"image_id": "c", "status": "error",
         "error": {"code": "undecodable_image", "message": "not an image"}},
    ],
    "selection": {"main_image_id": "a", "order": ["a", "b"], "main_image_compliant": True,
                  "reason": "compliant", "duplicates": {}, "steps": []},
}
REFUSED: dict[str, Any] = {
    "listing_id": "L-2",
    "error": {"code": "too_many_images", "message": "7 > 6", "field": "images"},
}


def write(directory: Path, answers: list[dict[str, Any]], task: int,
          parquet: bool = True) -> ListingAnswersDatasink:
    sink = ListingAnswersDatasink(directory, parquet=parquet)
    sink.on_write_start()
    texts = [json.dumps(answer) for answer in answers]
    block = pa.table({"listing_id": [a["listing_id"] for a in answers], "answer": texts})
    sink.write([block], SimpleNamespace(task_idx=task))
    return sink


def read_jsonl(directory: Path) -> list[str]:
    return [line for file in sorted(directory.glob("answers-*.jsonl"))
            for line in file.read_text().splitlines()]


def test_parquet_has_a_row_per_jsonl_line_in_the_same_order(tmp_path: Path) -> None:
    write(tmp_path, [ASSESSED, REFUSED], task=0)
    write(tmp_path, [{**ASSESSED, "listing_id": "L-3", "decision_id": "d-3"}], task=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "answers-00000.jsonl", "answers-00000.parquet",
        "answers-00001.jsonl", "answers-00001.parquet"]
    table = pq.read_table(sorted(tmp_path.glob("answers-*.parquet")))
    lines = read_jsonl(tmp_path)
    assert table.num_rows == len(lines) == 3
    assert table.column("answer").to_pylist() == lines  # the JSON text, unchanged
    assert table.column("listing_id").to_pylist() == ["L-1", "L-2", "L-3"]


def test_parquet_schema_is_the_documented_one(tmp_path: Path) -> None:
    write(tmp_path, [ASSESSED, REFUSED], task=0)
    table = pq.read_table(tmp_path / "answers-00000.parquet")
    assert table.schema.equals(ANSWER_SCHEMA)
    assessed, refused = table.to_pylist()
    assert assessed["decision_id"] == "d-1" and assessed["error_code"] is None
    assert assessed["main_image_id"] == "a" and assessed["main_image_compliant"] is True
    assert [image["image_id"] for image in assessed["images"]] == ["a", "b", "c"]
    ok, rejected, failed = assessed["images"]
    assert ok["action"] == "approve" and ok["quality_score"] == 0.8125
    assert ok["violated_rules"] == []
    assert rejected["violated_rules"] == ["no_overlay_text"]
    assert failed["status"] == "error" and failed["error_code"] == "undecodable_image"
    assert failed["action"] is None and failed["quality_score"] is None
    assert refused["error_code"] == "too_many_images" and refused["images"] == []
    assert refused["decision_id"] is None


def test_an_empty_write_task_still_writes_a_typed_file(tmp_path: Path) -> None:
    write(tmp_path, [], task=0)
    table = pq.read_table(tmp_path / "answers-00000.parquet")
    assert table.num_rows == 0 and table.schema.equals(ANSWER_SCHEMA)


def test_without_parquet_only_json_lines_are_written(tmp_path: Path) -> None:
    sink = write(tmp_path, [ASSESSED, REFUSED], task=0, parquet=False)
    assert [p.name for p in tmp_path.iterdir()] == ["answers-00000.jsonl"]
    assert sink.parquet is False


@pytest.mark.parametrize(("argv", "parquet"), [([], False), (["--format", "jsonl"], False),
                                               (["--format", "parquet"], True)])
def test_the_format_option_reaches_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], parquet: bool
) -> None:
    ran: list[BatchOptions] = []

    def run(_address: object, _manifest: object, _out: object, _settings: object,
            options: BatchOptions) -> object:
        ran.append(options)
        return SimpleNamespace(lines=lambda: [])

    monkeypatch.setattr(batch_cli, "_run_on_ray", run)
    manifest = write_csv(tmp_path / "manifest.csv",
                         [{"listing_id": "L-1", "image_id": "front", "path": "front.jpg"}])
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), *argv]) == 0
    assert [options.parquet for options in ran] == [parquet]


def test_an_unknown_format_is_an_argparse_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["batch", str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"),
              "--format", "csv"])
    assert exit_.value.code == 2
