"""The technical-only serve config derived from the full one."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmarks.service import (
    DEFAULT_SERVE_CONFIG,
    application_args,
    bench_config,
    technical_only,
    write_technical_config,
)


def test_technical_only_drops_models_and_their_deployments() -> None:
    full = yaml.safe_load(DEFAULT_SERVE_CONFIG.read_text())
    variant = technical_only(full)
    (application,) = variant["applications"]
    assert application["args"]["models"] is None
    names = [entry["name"] for entry in application["deployments"]]
    # Exactly what a technical-only graph has (every scorer card's deployment is gone).
    assert names == ["Curator", "Preprocess", "Canary"]
    # The source is untouched, and everything else is carried over.
    assert full["applications"][0]["args"]["models"] is not None
    assert variant["http_options"] == full["http_options"]


def test_written_variant_validates_as_app_args(tmp_path: Path) -> None:
    from curator.core.settings import CuratorAppArgs

    path = write_technical_config(DEFAULT_SERVE_CONFIG, tmp_path / "technical.yaml")
    args = CuratorAppArgs.model_validate(application_args(path))
    assert args.models is None


def test_bench_config_rewrites_only_host_and_port(tmp_path: Path) -> None:
    path = bench_config(DEFAULT_SERVE_CONFIG, 18123, tmp_path / "bench.yaml")
    config = yaml.safe_load(path.read_text())
    assert config["http_options"]["port"] == 18123
    assert config["http_options"]["host"] == "127.0.0.1"
    assert config["applications"] == yaml.safe_load(
        DEFAULT_SERVE_CONFIG.read_text())["applications"]
