"""`curator models list|fetch|build-engines`, through the same argparse wiring `curator` uses."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from curator.cli.models import EXIT_OK, EXIT_UNSUPPORTED, add_models_commands
from models.artifacts import NUDITY_DETECTOR, TEXT_DETECTOR, TEXT_DETECTOR_TINY, all_artifacts
from models.runtime.engine_cache import EngineCache, EngineKey
from models.runtime.profiles import profile_for


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="curator")
    add_models_commands(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_list_shows_every_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["models", "list", "--engine-dir", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    for artifact in all_artifacts():
        assert artifact.name in out and artifact.wheel_spec in out and artifact.sha256[:16] in out
    assert str(NUDITY_DETECTOR.local_path) in out  # fetched by `make install`
    assert "AGPL-3.0" in out
    (tiny,) = [line for line in out.splitlines() if line.startswith(TEXT_DETECTOR_TINY.name)]
    assert tiny.endswith("(a benchmark candidate, not served)")
    assert f"TensorRT engines in {tmp_path}: none" in out


def test_list_shows_cached_engines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = EngineKey.create(onnx_sha256=NUDITY_DETECTOR.sha256, gpu_name="NVIDIA L4",
                           compute_capability="8.9", tensorrt_version="10.13.3.9",
                           precision="fp16",
                           profile=profile_for("images", (1, 8, 8), (3, 320, 320)))
    EngineCache(tmp_path).store(key, NUDITY_DETECTOR.name, b"plan", built_precision="fp16",
                                build_time_s=30, builder={})
    (tmp_path / "orphan.engine").write_bytes(b"plan")
    assert run(["models", "list", "--engine-dir", str(tmp_path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"TensorRT engines in {tmp_path}: 2" in out
    assert "nudenet-320n fp16 on NVIDIA L4 (sm 8.9), TensorRT 10.13.3.9" in out
    assert "orphan.engine  (sidecar missing" in out


def test_fetch_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    """The artifacts are already here, so this checks hashes and downloads nothing."""
    assert run(["models", "fetch"]) == EXIT_OK
    out = capsys.readouterr().out
    assert str(TEXT_DETECTOR.local_path) in out


def test_build_engines_options_parse() -> None:
    parser = argparse.ArgumentParser(prog="curator")
    add_models_commands(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["models", "build-engines", "--max-batch", "32", "--precision",
                              "fp32", "--engine-dir", "/tmp/x", "--model", "nudenet-320n"])
    assert (args.max_batch, args.opt_batch, args.precision) == (32, None, "fp32")
    assert args.engine_dir == Path("/tmp/x") and args.model == ["nudenet-320n"]
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "build-engines", "--precision", "int8"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="asserts the no-GPU refusal")
def test_build_engines_refuses_without_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["models", "build-engines", "--engine-dir", str(tmp_path)]) == EXIT_UNSUPPORTED
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
