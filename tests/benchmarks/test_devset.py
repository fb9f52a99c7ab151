"""The labelled dev set (benchmarks/devset/): its layout, and `curator eval` on a slice of it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from curator.core.evaluation import (
    CSV_HEADER,
    DEVSET_DIR,
    LABELS,
    DevSetError,
    evaluate_devset,
    groups_of,
    load_devset,
)
from curator.core.pipeline import LocalPipeline
from curator.core.settings import ModelStageSettings
from rules import POLICY_DIR, load_policy_set

# The independent check set: never part of the dev set (see benchmarks/devset/README.md).
EVAL_DIR = Path("/work/shared/eval/images")
MAX_SIDE_PX = 1000


@pytest.fixture(scope="module")
def devset() -> list:
    return load_devset(DEVSET_DIR)


def test_the_set_is_large_and_covers_every_label_both_ways(devset: list) -> None:
    assert len(devset) >= 200
    for label in LABELS:
        answers = Counter(image.labels[label] for image in devset)
        assert answers[True] >= 10 and answers[False] >= 10, (label, answers)


def test_every_image_opens_and_is_at_most_1000_px(devset: list) -> None:
    for image in devset:
        with Image.open(image.path) as opened:
            opened.verify()
        with Image.open(image.path) as opened:
            assert max(opened.size) <= MAX_SIDE_PX, image.image


def test_every_row_names_its_source_and_licence(devset: list) -> None:
    for image in devset:
        assert image.source and image.licence, image.image


def test_groups_are_listings_with_a_category(devset: list) -> None:
    groups = groups_of(devset)
    assert len(groups) >= 40
    for group, members in groups.items():
        assert len({member.category for member in members}) == 1, group
    with_compliant = [g for g, members in groups.items()
                      if any(m.labels["main_image_compliant"] for m in members)]
    assert len(with_compliant) >= 20


def test_no_image_of_the_independent_eval_set(devset: list) -> None:
    if not EVAL_DIR.is_dir():
        pytest.skip(f"{EVAL_DIR} not present")
    eval_hashes = {hashlib.sha256(path.read_bytes()).hexdigest() for path in EVAL_DIR.iterdir()}
    assert not [image.image for image in devset
                if hashlib.sha256(image.path.read_bytes()).hexdigest() in eval_hashes]


def test_a_malformed_labels_file_names_the_file_and_row(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    Image.new("RGB", (10, 10), "white").save(tmp_path / "images" / "a.jpg")
    row = ["a.jpg", "g", "default", "s", "CC0-1.0", "10x10", "yes", "no", "maybe", "no", "no",
           "yes", ""]
    (tmp_path / "labels" / "x.csv").write_text(",".join(CSV_HEADER) + "\n" + ",".join(row) + "\n")
    with pytest.raises(DevSetError, match=r"x\.csv:2: person must be yes or no"):
        load_devset(tmp_path)


# A slice of three groups: a model seen from the front and the back, three bag packshots (one a
# derived side-by-side), and a hoodie as a transparent PNG, flattened on white, and on a model.
SLICE = ("magento:WB04", "magento:24-MB02", "solidus:hoodie-red")


def test_curator_eval_on_a_slice(tmp_path: Path, devset: list) -> None:
    """The real command on real images: its figures add up to the labels, and on this slice the
    service agrees with the reviewer on people, white backgrounds and the main image."""
    figures_path, sheet = tmp_path / "figures.json", tmp_path / "sheet.html"
    # FP32 on ONNX Runtime: the one runtime every host has, so the figures do not depend on the
    # CPU the test lands on.
    command = [sys.executable, "-m", "curator.cli", "eval", "--json", str(figures_path),
               "--sheet", str(sheet), "--cpu-precision", "fp32"]
    for group in SLICE:
        command += ["--group", group]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "precision=fp32" in done.stderr and "precision=bf16" not in done.stderr
    assert "macro F1" in done.stdout and "selection:" in done.stdout
    figures = json.loads(figures_path.read_text())
    members = [image for image in devset if image.group in SLICE]
    assert (figures["images"], figures["groups"], figures["errors"]) == (len(members), 3, [])
    for label, score in figures["labels"].items():
        assert score["tp"] + score["fp"] + score["fn"] + score["tn"] == len(members), label
        assert score["tp"] + score["fn"] == sum(image.labels[label] for image in members), label
    person = figures["labels"]["person"]
    assert (person["tp"], person["fp"], person["fn"]) == (3, 0, 0)
    white = figures["labels"]["white_background"]
    assert white["fp"] == white["fn"] == 0  # the transparent PNG is not a white background
    assert figures["selection"] == {"groups": 3, "hits": 3, "hit_rate": 1.0}
    shown = len(figures["disagreements"])
    assert f"<h1>{shown} images where curator and the reviewer disagree</h1>" in sheet.read_text()


def test_a_full_length_outfit_shot_is_not_the_main_image_of_legwear(devset: list) -> None:
    """Capris sold on a model: the shots cut at the waist are compliant; the full-length outfit
    shot (the model whole, head to feet, a fifth of the frame) is reviewed as main, so it no
    longer wins the selection on quality."""
    members = [image for image in devset if image.group == "magento:WP09"]
    report = evaluate_devset(members, LocalPipeline(ModelStageSettings()),
                             load_policy_set(POLICY_DIR))
    violations = {result.labelled.image.split("/")[-1]: result.violations
                  for result in report.images}
    assert "main.apparel.not_full_length" in violations["wp09-black_outfit.jpg"]
    assert "main.apparel.not_full_length" not in violations["wp09-black_main.jpg"]
    assert [group.hit for group in report.groups] == [True]
