"""`curator batch`: what is wrong with its input is said, naming the culprit, and exits 2
before Ray starts. (The command's run on Ray: tests/graphs/test_batch.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import ray
import yaml

from curator.cli import main
from curator.cli.rules import DEFAULT_SERVE_CONFIG
from rules import POLICY_DIR
from tests.graphs.manifests import write_csv

GOOD_ROW = {"listing_id": "L-1", "image_id": "front", "path": "front.jpg"}


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("Ray was started for input that cannot run")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "manifest.csv", [GOOD_ROW])


def batch(*argv: str | Path) -> int:
    return main(["batch", *map(str, argv)])


def test_a_manifest_without_listing_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_csv(tmp_path / "manifest.csv", [{"image_id": "a", "path": "a.jpg"}])
    assert batch(manifest, "--out", tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "missing column(s) 'listing_id'" in error and str(manifest) in error
    assert not (tmp_path / "out").exists()


def test_an_unknown_role_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_csv(tmp_path / "manifest.csv", [{**GOOD_ROW, "role": "hero"}])
    assert batch(manifest, "--out", tmp_path / "out") == 2
    assert "column 'role' holds 'hero' in row 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--batch-size", "0"], ["--listing-actors", "-1"], ["--gpus-per-model-actor", "-0.5"], [],
], ids=["batch-size-0", "negative-actors", "negative-gpus", "no-out"])
def test_malformed_options_are_argparse_errors(
    manifest: Path, tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = [] if not argv else ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        batch(manifest, *out, *argv)
    assert exit_.value.code == 2
    assert "curator batch: error" in capsys.readouterr().err


def test_a_batch_larger_than_the_models_allow(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert batch(manifest, "--out", tmp_path / "out", "--batch-size", "64") == 2
    assert "batch size 64 exceeds the models' max_batch_size_limit 32" in capsys.readouterr().err


def test_an_accelerator_type_without_gpus(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert batch(manifest, "--out", tmp_path / "out", "--accelerator-type", "L4") == 2
    assert "accelerator type L4 needs GPUs per model actor" in capsys.readouterr().err


def test_a_folder_with_earlier_answers(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "answers-00000.jsonl").write_text("{}\n")
    assert batch(manifest, "--out", tmp_path / "out") == 2
    assert "is not an empty folder" in capsys.readouterr().err


def test_a_config_without_models(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(DEFAULT_SERVE_CONFIG.read_text())
    config["applications"][0]["args"]["models"] = None
    technical = tmp_path / "technical.yaml"
    technical.write_text(yaml.safe_dump(config))
    assert batch(manifest, "--out", tmp_path / "out", "--config", technical) == 2
    assert "args.models is null" in capsys.readouterr().err


def test_policies_that_do_not_load(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, broken)
    (broken / "marketplaces" / "uk.yaml").write_text("policy: uk\nextends: nowhere\n")
    assert batch(manifest, "--out", tmp_path / "out", "--policies", broken) == 2
    assert "uk.yaml" in capsys.readouterr().err
