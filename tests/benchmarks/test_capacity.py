"""The capacity model's arithmetic (benchmarks/capacity.py, docs/capacity.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import capacity
from benchmarks.capacity import (
    Assumptions,
    Measured,
    NodeShape,
    busy,
    gpu_ms_per_image,
    nodes,
    peak_rate,
    reaction_s,
    surge_load,
    target_utilisation,
)


def _measured(**changes: object) -> Measured:
    base = Measured(
        source="x.json", date="2026-12-05T12:00:00", commit="abc1234", level="closed loop",
        images_per_s=5.0,
        cpu_ms={"preprocess": 40.0, "extractor": 130.0, "scorer": 70.0, "ingress": 30.0,
                "proxy": 10.0},
        detector_ms={"text": 70.0, "objects": 20.0, "faces_hands": 10.0, "nudity": 10.0},
        nudenet_ms=10.0, replica_start_s=9.0, replica_start_source="test")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_peak_rate_is_the_mean_times_the_peak_to_mean_ratio() -> None:
    assert peak_rate(86_400) == pytest.approx(3.0)
    assert peak_rate(1e9) == pytest.approx(1e9 / 86_400 * 3)
    assert peak_rate(86_400, peak_to_mean=1.0) == pytest.approx(1.0)


def test_busy_devices_are_rate_times_service_time() -> None:
    assert busy(1000.0, 250.0) == pytest.approx(250.0)
    assert busy(0.0, 250.0) == 0.0


def test_reaction_and_surge() -> None:
    a = Assumptions(look_back_period_s=10, upscale_delay_s=5, surge_factor=2.0, surge_s=60.0,
                    max_utilisation=0.9)
    assert reaction_s(a, replica_start_s=9) == pytest.approx(19.0)
    assert reaction_s(a, replica_start_s=9, node_start_s=240) == pytest.approx(259.0)
    # Linear rise: after 30 of 60 s a doubling has reached 1.5x; after the minute it stays 2x.
    assert surge_load(30.0, a) == pytest.approx(1.5)
    assert surge_load(600.0, a) == pytest.approx(2.0)
    assert surge_load(0.0, a) == pytest.approx(1.0)
    assert target_utilisation(30.0, a) == pytest.approx(0.6)
    # Slower replicas leave less headroom unused: the target falls as the start time grows.
    assert target_utilisation(reaction_s(a, 30), a) < target_utilisation(reaction_s(a, 9), a)


def test_nodes_fill_gpu_nodes_spare_vcpus_before_adding_cpu_nodes() -> None:
    cpu = NodeShape("cpu", "c", vcpus=32, gpus=0, reserved_vcpus=1)
    gpu = NodeShape("gpu", "g", vcpus=8, gpus=1, reserved_vcpus=1)
    # 10 GPUs -> 10 GPU nodes with 70 spare vCPUs; 100 vCPUs -> 30 more -> one 31-vCPU node.
    assert nodes(100.0, 10.0, cpu, gpu) == {"cpu_nodes": 1, "gpu_nodes": 10, "gpus": 10,
                                            "vcpus": 32 + 80}
    # Exactly full nodes are not rounded up; a fraction over is.
    assert nodes(62.0, 0.0, cpu, gpu)["cpu_nodes"] == 2
    assert nodes(62.01, 0.0, cpu, gpu)["cpu_nodes"] == 3
    assert nodes(10.0, 2.5, cpu, gpu) == {"cpu_nodes": 0, "gpu_nodes": 3, "gpus": 3, "vcpus": 24}


def test_gpu_time_scales_the_published_figure() -> None:
    published = {"reference_gpu_ms": 1.0, "a100_fp16_tflops": 300.0, "l4_fp16_tflops": 100.0}
    # Detectors cost 110 CPU ms; a YOLOv8n at 640 px = 4 x NudeNet 320n = 40 ms: 2.75 units,
    # 2.75 A100 ms, 3x slower on the L4, halved efficiency doubles it.
    measured = _measured()
    assert gpu_ms_per_image(measured, published, efficiency=1.0) == pytest.approx(8.25)
    assert gpu_ms_per_image(measured, published, efficiency=0.5) == pytest.approx(16.5)


def test_plans_size_for_the_target_utilisation_and_the_doubled_peak() -> None:
    a = Assumptions()
    measured = _measured()
    cpu_only, gpu = capacity.plans(measured, a)
    assert cpu_only.cpu_ms_per_image == pytest.approx(280.0)
    # The GPU plan keeps on vCPUs everything but the detectors' inference (110 of 130 ms).
    assert gpu.cpu_ms_per_image == pytest.approx(40 + 20 + 70 + 30 + 10)
    utilisation = target_utilisation(reaction_s(a, 9.0), a)
    row = cpu_only.rows[0]
    assert row["images_per_day"] == 1e9
    vcpus = busy(peak_rate(1e9), 280.0) / utilisation
    assert row["at_peak"] == nodes(vcpus, 0.0)
    doubled = busy(2 * peak_rate(1e9), 280.0) / a.max_utilisation
    assert row["peak_doubled"] == nodes(doubled, 0.0)
    # Ten times the images, about ten times the machines.
    ratio = cpu_only.rows[2]["at_peak"]["cpu_nodes"] / row["at_peak"]["cpu_nodes"]
    assert ratio == pytest.approx(10, rel=0.01)
    assert all(r["at_peak"]["gpus"] > 0 for r in gpu.rows)


def test_serve_settings_hold_the_target_utilisation() -> None:
    a = Assumptions()
    settings = capacity.serve_settings(_measured(), a)
    utilisation = target_utilisation(reaction_s(a, 9.0), a)
    assert settings["Preprocess"]["target_ongoing_requests"] == pytest.approx(utilisation,
                                                                              abs=0.01)
    assert settings["AttributeExtractor"]["target_ongoing_requests"] == round(
        utilisation * 2 * a.gpu_max_batch_size)
    assert settings["AttributeExtractor"]["upscale_delay_s"] == a.upscale_delay_s


def test_measured_inputs_come_from_the_bench_results(tmp_path: Path) -> None:
    measured = capacity.load_measured()
    data = json.loads(capacity.MEASURED.read_text())
    peak = capacity.planning_level(data["graphs"]["full"]["levels"])
    assert measured.images_per_s == peak["images_per_s"]
    assert measured.cpu_ms["extractor"] == peak["service_cpu_ms_per_image_by_role"][
        "replica:AttributeExtractor"]
    assert set(measured.detector_ms) == {"text", "objects", "faces_hands", "nudity"}
    # Another results file gives other figures.
    peak["service_cpu_ms_per_image_by_role"]["replica:Preprocess"] = 123.0
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    assert capacity.load_measured(other).cpu_ms["preprocess"] == 123.0


def test_the_plan_reads_the_fastest_level_that_shed_almost_nothing() -> None:
    def level(concurrency: int, images_per_s: float, refused_share: float) -> dict[str, Any]:
        return {"concurrency": concurrency, "images_per_s": images_per_s,
                "refused_share": refused_share}

    levels = [level(1, 3.1, 0.0), level(2, 3.6, 0.0), level(4, 3.7, 0.04),
              level(16, 3.9, 0.49), level(64, 4.2, 0.70)]
    # c=64 is the peak, but 70% of its requests were refused: c=4 is the one to plan on.
    assert capacity.planning_level(levels)["concurrency"] == 4
    # Where every level shed, the fastest of them.
    assert capacity.planning_level([level(16, 3.9, 0.5), level(64, 4.2, 0.7)])[
        "concurrency"] == 64


def test_doc_holds_what_the_script_writes() -> None:
    text = capacity.markdown(capacity.report(capacity.load_measured(), Assumptions()))
    assert capacity.doc_section() == text, (
        "docs/capacity.md is stale: run make capacity (python -m benchmarks.capacity --write-doc)")


def test_write_doc_cites_the_committed_copy_of_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make capacity` reads a fresh latest.json but the doc must name the copy it commits, or
    the test above finds the doc stale on a clean clone."""
    fresh = tmp_path / "latest.json"
    fresh.write_text(capacity.MEASURED.read_text())
    committed = tmp_path / "capacity-bench.json"
    written: list[str] = []
    monkeypatch.setattr(capacity, "MEASURED", committed)
    monkeypatch.setattr(capacity, "write_doc", written.append)
    assert capacity.main(["--results", str(fresh), "--write-doc"]) == 0
    assert committed.read_text() == fresh.read_text()
    assert f"Inputs: `{committed}`" in written[0]
