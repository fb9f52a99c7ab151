"""Runtime choice on a machine without GPU or TensorRT (this one, and CI), and every fallback."""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from models.artifacts import NUDITY_DETECTOR, TEXT_DETECTOR
from models.runtime import select, tensorrt_build
from models.runtime.base import InferenceRuntime, RuntimeInfo
from models.runtime.cpu_features import cpu_features
from models.runtime.deferred import WithNote
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from models.runtime.select import (
    BuildOnFirstUse,
    choose_cpu_model,
    create_runtime,
    describe_backends,
    openvino_available,
    torch_device,
)
from models.runtime.tensorrt_build import tensorrt_version
from models.runtime.torch_device import GpuIdentity
from tests.models.runtime.inputs import people_batch

FAKE_GPU = GpuIdentity(0, "NVIDIA Imaginary 80GB", "9.0")
# What a model falls back to on this host's CPU: OpenVINO for NudeNet where the CPU has native
# bf16, ONNX Runtime elsewhere; the text detector is on ONNX Runtime everywhere.
CPU_RUNTIME = choose_cpu_model(NUDITY_DETECTOR, "auto", cpu_features(),
                               openvino_available()).runtime
needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="asserts the CPU fallback")


@needs_no_gpu
@pytest.mark.parametrize("prefer", ["auto", "tensorrt", "onnxruntime"])
def test_falls_back_to_onnxruntime_cpu(
    prefer: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="models.runtime")
    # cpu_precision fp32: ONNX Runtime on any host (auto takes OpenVINO on AMX hosts:
    # tests/models/runtime/test_cpu_features.py).
    runtime = create_runtime(NUDITY_DETECTOR, prefer=prefer,  # type: ignore[arg-type]
                             engine_dir=tmp_path, cpu_precision="fp32")
    info = runtime.info
    assert (info.model, info.runtime, info.device, info.precision) == (
        NUDITY_DETECTOR.name, "onnxruntime", "cpu", "fp32")
    assert "CPUExecutionProvider" in info.detail
    if prefer != "onnxruntime":
        assert "no CUDA GPU visible" in info.detail
    chosen = [record for record in caplog.records if "runtime=onnxruntime" in record.message]
    assert len(chosen) == 1 and chosen[0].levelno == logging.INFO
    assert "device=cpu" in chosen[0].message and "precision=fp32" in chosen[0].message
    outputs = runtime.run({"images": people_batch(2)})
    assert outputs["output0"].shape == (2, 22, 2100)
    assert not list(tmp_path.iterdir()), "no engine files without TensorRT"


def test_tensorrt_import_failure_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """A GPU is there but `import tensorrt` fails (missing wheel or libnvinfer)."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise
    tensorrt_build.import_tensorrt.cache_clear()  # forget a real import from earlier tests
    request.addfinalizer(tensorrt_build.import_tensorrt.cache_clear)
    monkeypatch.setattr(select, "gpu_identity", lambda: FAKE_GPU)
    monkeypatch.setattr(select, "gpu_providers_available", lambda: False)
    assert tensorrt_version() is None
    with caplog.at_level(logging.WARNING, logger="models.runtime.select"):
        runtime = create_runtime(TEXT_DETECTOR, prefer="tensorrt", engine_dir=tmp_path)
    assert runtime.info.runtime == "onnxruntime" and runtime.info.device == "cpu"
    assert "tensorrt package is not importable" in runtime.info.detail
    assert any("not using TensorRT" in record.message for record in caplog.records)


def test_tensorrt_setup_error_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(select, "gpu_identity", lambda: FAKE_GPU)
    monkeypatch.setattr(select, "gpu_providers_available", lambda: False)
    monkeypatch.setattr(select, "tensorrt_version", lambda: "10.13.3.9")

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("libnvinfer exploded")

    monkeypatch.setattr(select, "TensorRtEngineSource", broken)
    runtime = create_runtime(NUDITY_DETECTOR, engine_dir=tmp_path)
    assert runtime.info.runtime == CPU_RUNTIME
    assert "libnvinfer exploded" in runtime.info.detail


@dataclass
class FakePlan:
    precision: str = "fp16"


class FakeSource:
    """Stands in for TensorRtEngineSource: a cache that hits or misses, a build that fails."""

    def __init__(self, *_: object, cached: object = None, **__: object) -> None:
        self.model_name = NUDITY_DETECTOR.name
        self.plan = FakePlan()
        self.gpu = FAKE_GPU
        self.miss_reason = "missing: no engine cached"
        self.cached = cached
        self.builds = 0

    def load_cached(self) -> object:
        return self.cached

    def load_or_build(self) -> object:
        self.builds += 1
        raise RuntimeError("builder ran out of memory")


class FakeTensorRt:
    info = RuntimeInfo(NUDITY_DETECTOR.name, "tensorrt", FAKE_GPU.label, "fp16", "cached")

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output0": np.zeros((len(inputs["images"]), 22, 2100), np.float32)}


def test_cached_engine_is_used_without_building(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(select, "gpu_identity", lambda: FAKE_GPU)
    monkeypatch.setattr(select, "tensorrt_version", lambda: "10.13.3.9")
    monkeypatch.setattr(select, "TensorRtEngineSource",
                        lambda *a, **k: FakeSource(cached=FakeTensorRt()))
    runtime = create_runtime(NUDITY_DETECTOR, engine_dir=tmp_path)
    assert isinstance(runtime, FakeTensorRt)


def test_uncached_engine_builds_on_first_use_then_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sources: list[FakeSource] = []

    def make_source(*args: object, **kwargs: object) -> FakeSource:
        sources.append(FakeSource(*args, **kwargs))
        return sources[-1]

    monkeypatch.setattr(select, "gpu_identity", lambda: FAKE_GPU)
    monkeypatch.setattr(select, "gpu_providers_available", lambda: False)
    monkeypatch.setattr(select, "tensorrt_version", lambda: "10.13.3.9")
    monkeypatch.setattr(select, "TensorRtEngineSource", make_source)
    with caplog.at_level(logging.WARNING):
        runtime = create_runtime(NUDITY_DETECTOR, engine_dir=tmp_path)
    assert isinstance(runtime, BuildOnFirstUse)
    assert sources[0].builds == 0, "nothing is built while the replica starts"
    assert runtime.info.runtime == "tensorrt" and "builds on first use" in runtime.info.detail
    assert any("NO CACHED TENSORRT ENGINE" in record.message for record in caplog.records)

    outputs = runtime.run({"images": people_batch(1)})  # answered while the build runs
    assert outputs["output0"].shape == (1, 22, 2100)
    final = runtime.prepare(timeout_s=60)
    assert sources[0].builds == 1
    assert final.info.runtime == runtime.info.runtime == CPU_RUNTIME
    assert "builder ran out of memory" in runtime.info.detail
    runtime.run({"images": people_batch(1)})
    assert sources[0].builds == 1, "a failed build is not retried on every request"


class SlowSource(FakeSource):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def load_or_build(self) -> object:
        self.builds += 1
        assert self.release.wait(60)
        return FakeTensorRt()


def test_onnxruntime_answers_until_the_engine_is_built() -> None:
    source = SlowSource()
    fallback_reasons: list[str] = []

    def fallback(reason: str) -> InferenceRuntime:
        fallback_reasons.append(reason)
        return WithNote(OnnxRuntimeCpu(NUDITY_DETECTOR.name, NUDITY_DETECTOR.path()), reason)

    runtime = BuildOnFirstUse(source, fallback)  # type: ignore[arg-type]
    interim = runtime.run({"images": people_batch(1)})
    assert runtime.info.runtime == "onnxruntime" and "interim" in runtime.info.detail
    assert np.abs(interim["output0"]).sum() > 0
    with pytest.raises(TimeoutError):
        runtime.prepare(timeout_s=0.05)
    source.release.set()
    runtime.prepare(timeout_s=60)
    assert runtime.info.runtime == "tensorrt"
    assert not runtime.run({"images": people_batch(2)})["output0"].any(), "FakeTensorRt answers"
    assert source.builds == 1 and len(fallback_reasons) == 1


def test_bad_arguments_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefer"):
        create_runtime(NUDITY_DETECTOR, prefer="fastest", engine_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        create_runtime(NUDITY_DETECTOR, precision="int8", engine_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        create_runtime(NUDITY_DETECTOR, batch_profile=(1, 32, 16), engine_dir=tmp_path)


def test_describe_backends_reports_what_is_here() -> None:
    backends = describe_backends()
    assert backends["torch"] == torch.__version__
    assert "CPUExecutionProvider" in backends["onnxruntime_providers"]
    assert backends["default_runtime"] in {"tensorrt", "onnxruntime-cuda", "onnxruntime-cpu"}
    if not torch.cuda.is_available():
        assert backends["gpu"] is None
        assert backends["default_runtime"] == "onnxruntime-cpu"
        assert (NUDITY_DETECTOR.name in backends["cpu_bf16_models"]) == (CPU_RUNTIME == "openvino")
        assert TEXT_DETECTOR.name not in backends["cpu_bf16_models"]
    backends["gpu"] = "mutated"
    assert describe_backends()["gpu"] != "mutated", "callers get a copy"


def test_torch_device_matches_cuda_availability() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert torch_device().type == expected
