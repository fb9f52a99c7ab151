"""What the batch job's model actors ask Ray for: CPUs alone, or a GPU share pinned to a GPU
model when the cluster mixes them. (A run on a fake cluster with L4 nodes:
benchmarks/cluster_batch.py.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from curator.cli import batch as batch_cli
from curator.cli import main
from graphs.batch_options import BatchOptions
from tests.graphs.manifests import write_csv


def test_without_gpus_the_actors_ask_for_cpus_only() -> None:
    assert BatchOptions().model_actor_resources(2) == {"num_cpus": 2}


def test_a_gpu_share_leaves_the_cpu_side_to_ray_data() -> None:
    assert BatchOptions(gpus_per_model_actor=0.5).model_actor_resources(2) == {"num_gpus": 0.5}


def test_an_accelerator_type_pins_the_gpu_model() -> None:
    options = BatchOptions(gpus_per_model_actor=0.5, accelerator_type="L4")
    assert options.model_actor_resources(2) == {"num_gpus": 0.5, "accelerator_type": "L4"}


def test_the_accelerator_option_reaches_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[BatchOptions] = []

    def run(_address: object, _manifest: object, _out: object, _settings: object,
            options: BatchOptions) -> object:
        ran.append(options)
        return SimpleNamespace(lines=lambda: [])

    monkeypatch.setattr(batch_cli, "_run_on_ray", run)
    manifest = write_csv(tmp_path / "manifest.csv",
                         [{"listing_id": "L-1", "image_id": "front", "path": "front.jpg"}])
    argv = ["batch", str(manifest), "--out", str(tmp_path / "out"),
            "--gpus-per-model-actor", "0.5", "--accelerator-type", "L4"]
    assert main(argv) == 0
    assert [(o.gpus_per_model_actor, o.accelerator_type) for o in ran] == [(0.5, "L4")]
