"""The batch mode end to end: `curator batch` over a manifest on a real local Ray (Ray Data, the
real ONNX models), each listing's answer compared with what the same classes answer in-process.

One run of the command serves every test here (a module fixture): starting Ray and the model
actors takes most of the time."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curator.cli import main
from curator.cli.rules import DEFAULT_SERVE_CONFIG
from curator.contracts.schemas import Role
from curator.core.assessment import ListingAssessor
from curator.core.pipeline import LocalPipeline
from graphs.batch import BatchSettings
from graphs.batch_parquet import ANSWER_SCHEMA
from rules import policy_set_from_texts
from tests.graphs.manifests import write_csv
from tests.support import synthetic

pytestmark = pytest.mark.integration

# Per listing, its images: (image_id, a file of the collection or a URL, role).
LISTINGS: dict[str, list[tuple[str, str, Role | None]]] = {
    # The seller's pick is a busy photo; the packshot on white becomes the main image.
    "L-1": [("busy", "busy.jpg", "main"), ("white", "white.jpg", None)],
    # A dark frame the shipped rules trim: a fix, measured again through all three stages.
    "L-2": [("framed", "framed.jpg", None)],
    # Three images that cannot be read (loopback is refused as online); the fourth is assessed.
    "L-3": [("broken", "corrupt.jpg", None), ("gone", "missing.jpg", None),
            ("private", "http://127.0.0.1:9/image.jpg", None), ("plain", "white2.jpg", None)],
    # A request the API refuses whole: two images share an id.
    "L-4": [("twin", "white.jpg", None), ("twin", "busy.jpg", None)],
}
UNREADABLE = {"broken": "corrupt_image", "gone": "file_unreadable", "private": "url_refused"}
# What differs between two runs of the same decision.
VOLATILE = {"decision_id", "timings_ms", "batch_sizes"}


@dataclass(frozen=True)
class BatchRun:
    collection: Path
    answers: dict[str, list[dict[str, Any]]]  # every answer line, by listing id
    printed: str  # the command's summary


def _render_collection(folder: Path) -> None:
    def jpeg(name: str, picture: Any, quality: int = 90) -> None:
        (folder / name).write_bytes(synthetic.to_jpeg_bytes(picture, quality=quality))

    jpeg("white.jpg", synthetic.render_product(size=(1000, 1000), seed=1))
    jpeg("white2.jpg", synthetic.render_product(size=(1000, 1000), shape="bottle", seed=3))
    jpeg("busy.jpg", synthetic.render_product(size=(1000, 1000), background="busy", seed=2))
    jpeg("framed.jpg", synthetic.add_border(
        synthetic.render_product(size=(1000, 1000), fill=0.86, seed=6), 20, (30, 30, 30)),
        quality=95)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory: pytest.TempPathFactory) -> BatchRun:
    collection = tmp_path_factory.mktemp("collection")
    _render_collection(collection)
    write_csv(collection / "manifest.csv", [
        {"listing_id": listing_id, "image_id": image_id, "role": role or "",
         "path": "" if source.startswith("http") else source,
         "url": source if source.startswith("http") else ""}
        for listing_id, images in LISTINGS.items() for image_id, source, role in images
    ])
    out = collection / "answers"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # A local Ray of its own, shut down as the command ends; small batches, so that the
        # model stages see several.
        status = main(["batch", str(collection / "manifest.csv"), "--out", str(out),
                       "--address", "local", "--batch-size", "4", "--format", "parquet"])
    assert status == 0
    answers: dict[str, list[dict[str, Any]]] = {}
    for file in sorted(out.glob("answers-*.jsonl")):
        for line in file.read_text().splitlines():
            answer = json.loads(line)
            answers.setdefault(answer["listing_id"], []).append(answer)
    return BatchRun(collection, answers, printed.getvalue())


@pytest.fixture(scope="module")
def in_process(batch_run: BatchRun) -> dict[str, dict[str, Any]]:
    """Each listing's answer from `LocalPipeline` + `ListingAssessor` in this process, over its
    images that are files (what `curator assess` does), with the serve config's settings."""
    settings = BatchSettings.from_serve_config(DEFAULT_SERVE_CONFIG)
    pipeline = LocalPipeline(settings.models, settings.app_args.limits)
    assessor = ListingAssessor(policy_set_from_texts(settings.policy_texts))
    expected = {}
    for listing_id in ("L-1", "L-2", "L-3"):
        files = [(image_id, (batch_run.collection / source).read_bytes(), role)
                 for image_id, source, role in LISTINGS[listing_id]
                 if (batch_run.collection / source).is_file()]
        originals = {image_id: data for image_id, data, _ in files}
        response = asyncio.run(assessor.assess(
            listing_id=listing_id, category="default", marketplace="US",
            images=pipeline.run(list((image_id, data) for image_id, data, _ in files)),
            roles=[role for _, _, role in files], fixer=pipeline.fixer(originals),
            include_fixed_images=False,
        ))
        expected[listing_id] = response.model_dump(mode="json", exclude_none=True)
    return expected


def comparable(value: Any) -> Any:
    """`value` without what differs run to run, its floats equal within 1e-3."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, float):
        return pytest.approx(value, abs=1e-3)
    return value


def test_every_listing_is_answered_once(batch_run: BatchRun) -> None:
    assert sorted(batch_run.answers) == sorted(LISTINGS)
    assert all(len(answers) == 1 for answers in batch_run.answers.values())


@pytest.mark.parametrize("listing_id", ["L-1", "L-2"])
def test_an_answer_equals_the_in_process_answer(
    batch_run: BatchRun, in_process: dict[str, dict[str, Any]], listing_id: str
) -> None:
    (offline,) = batch_run.answers[listing_id]
    assert comparable(offline) == comparable(in_process[listing_id])


def test_the_listings_decide_as_the_rules_say(batch_run: BatchRun) -> None:
    (first,), (framed,) = batch_run.answers["L-1"], batch_run.answers["L-2"]
    assert first["selection"]["main_image_id"] == "white"
    assert [image["image_id"] for image in first["images"]] == ["busy", "white"]  # as listed
    (image,) = framed["images"]
    assert image["action"] == "fix"
    assert image["fix"]["accepted"] and image["fix"]["applied"] == ["trim_border"]
    assert "image" not in image["fix"]  # no fixed image bytes in the batch answers
    assert "main.frame.no_border" in {v["rule_id"] for v in image["verdict"]["violations"]}


def test_unreadable_images_are_errors_and_the_rest_is_assessed(
    batch_run: BatchRun, in_process: dict[str, dict[str, Any]]
) -> None:
    (answer,) = batch_run.answers["L-3"]
    images = {image["image_id"]: image for image in answer["images"]}
    assert list(images) == ["broken", "gone", "private", "plain"]
    for image_id, code in UNREADABLE.items():
        assert images[image_id]["status"] == "error"
        assert images[image_id]["error"]["code"] == code
        assert images[image_id]["error"]["image_id"] == image_id
    assert answer["selection"]["main_image_id"] == "plain"
    # Without the images that exist only offline (a missing file, a URL), the same answer.
    readable = dict(answer, images=[i for i in answer["images"] if i["image_id"] in
                                    ("broken", "plain")])
    assert comparable(readable) == comparable(in_process["L-3"])


def test_a_listing_the_api_refuses_gets_its_error(batch_run: BatchRun) -> None:
    (answer,) = batch_run.answers["L-4"]
    assert answer == {"listing_id": "L-4", "error": {
        "code": "duplicate_image_id", "message": "image_id 'twin' appears twice",
        "field": "images[1].image_id", "image_id": "twin"}}


def test_the_summary_counts_what_was_written(batch_run: BatchRun) -> None:
    lines = dict(line.split(None, 1) for line in batch_run.printed.replace(
        "image errors", "image_errors").splitlines())
    assert lines["listings"] == "4 (duplicate_image_id 1 refused)"
    assert lines["images"] == "7"
    assert lines["image_errors"] == "corrupt_image 1, file_unreadable 1, url_refused 1"
    assert lines["actions"].startswith("approve")
    assert "fix 1" in lines["actions"]
    assert float(lines["throughput"].split()[0]) > 0


def test_parquet_beside_the_json_lines_holds_the_same_answers(batch_run: BatchRun) -> None:
    out = batch_run.collection / "answers"
    lines = [line for file in sorted(out.glob("answers-*.jsonl"))
             for line in file.read_text().splitlines()]
    table = pq.read_table(sorted(out.glob("answers-*.parquet")))
    assert table.schema.equals(ANSWER_SCHEMA)
    assert table.num_rows == len(lines) == len(LISTINGS)
    assert table.column("answer").to_pylist() == lines
    rows = {row["listing_id"]: row for row in table.to_pylist()}
    assert rows["L-4"]["error_code"] == "duplicate_image_id"
    assert [image["image_id"] for image in rows["L-3"]["images"]] == [
        image_id for image_id, _, _ in LISTINGS["L-3"]]
