"""Build and cache orchestration against a stand-in `tensorrt` (fake_tensorrt.py), on CPU:
which precision path each TensorRT major takes, the FP32 fallback, the timing cache, the sidecar,
and rebuilding an engine that the cache holds but TensorRT will not load."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from models.runtime import tensorrt as trt_runtime
from models.runtime import tensorrt_build
from models.runtime.engine_cache import CacheStatus, EngineCache
from models.runtime.profiles import profile_for
from models.runtime.tensorrt import EngineLoadError, TensorRtEngineSource
from models.runtime.tensorrt_build import EngineBuildError
from models.runtime.torch_device import GpuIdentity
from tests.models.runtime.fake_tensorrt import Behaviour, make_fake_tensorrt

GPU = GpuIdentity(0, "NVIDIA Imaginary 80GB", "9.0")
MODEL = "nudenet-320n"
PROFILE = profile_for("images", (1, 8, 16), (3, 320, 320))


class StubRuntime:
    """Replaces TensorRtRuntime (which needs CUDA); refuses plans that start with b"bad"."""

    loaded: ClassVar[list[bytes]] = []

    def __init__(self, model_name: str, engine: bytes, **kwargs: object) -> None:
        if engine.startswith(b"bad"):
            raise EngineLoadError("deserialize_cuda_engine returned None")
        StubRuntime.loaded.append(engine)
        self.detail = str(kwargs["detail"])
        self.precision = kwargs["precision"]


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx-fp32-model-bytes")
    return path


@pytest.fixture
def install(
    monkeypatch: pytest.MonkeyPatch, behaviour: Behaviour
) -> Iterator[Callable[..., None]]:
    def use(version: str, converters: tuple[str, ...] = ()) -> None:
        monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(version, behaviour))
        tensorrt_build.import_tensorrt.cache_clear()
        tensorrt_build.trt_logger.cache_clear()
        monkeypatch.setattr(trt_runtime, "available_fp16_converters", lambda: converters)
        monkeypatch.setattr(trt_runtime, "TensorRtRuntime", StubRuntime)
        monkeypatch.setattr(tensorrt_build, "fp16_onnx_bytes",
                            lambda path, converter: b"onnx-fp16-by-" + converter.encode())

    StubRuntime.loaded = []
    yield use
    tensorrt_build.import_tensorrt.cache_clear()
    tensorrt_build.trt_logger.cache_clear()


def source(onnx_file: Path, cache_dir: Path, precision: str = "fp16") -> TensorRtEngineSource:
    return TensorRtEngineSource(MODEL, onnx_file, PROFILE, precision=precision,
                                cache=EngineCache(cache_dir), gpu=GPU)


def test_tensorrt_10_fp16_sets_the_builder_flag(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    install("10.13.3.9")
    engine_source = source(onnx_file, tmp_path / "engines")
    assert engine_source.load_cached() is None and "missing" in engine_source.miss_reason
    runtime = engine_source.load_or_build()
    assert behaviour.flags_set == ["FP16"]
    assert behaviour.parsed_models == [b"onnx-fp32-model-bytes"]
    assert behaviour.profiles == [{"images": ((1, 3, 320, 320), (8, 3, 320, 320),
                                              (16, 3, 320, 320))}]
    assert isinstance(runtime, StubRuntime) and runtime.precision == "fp16"
    assert "built on this host" in runtime.detail and "builder_flag" in runtime.detail
    sidecar = engine_source.cache.lookup(engine_source.key, MODEL).sidecar
    assert sidecar is not None
    assert sidecar.builder["fp16_method"] == "builder_flag"
    assert sidecar.builder["strongly_typed"] is False and sidecar.builder["tf32"] is False
    assert sidecar.key.tensorrt_version == "10.13.3.9" and sidecar.key.gpu_name == GPU.name
    timing = engine_source.cache.timing_cache_path(GPU.name, "9.0", "10.13.3.9")
    assert timing.read_bytes() == b"timings"

    again = source(onnx_file, tmp_path / "engines")
    assert again.load_cached() is not None
    assert behaviour.builds == 1, "the second source loads, it does not build"


def test_tensorrt_11_fp16_builds_a_converted_onnx(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    install("11.1.0.106", ("onnxconverter-common",))
    engine_source = source(onnx_file, tmp_path)
    engine_source.load_or_build()
    assert behaviour.flags_set == [], "TensorRT 11 has no FP16 builder flag"
    assert behaviour.parsed_models == [b"onnx-fp16-by-onnxconverter-common"]
    sidecar = engine_source.cache.lookup(engine_source.key, MODEL).sidecar
    assert sidecar is not None and sidecar.built_precision == "fp16"
    assert sidecar.builder["fp16_method"] == "strongly_typed_fp16_onnx"
    assert sidecar.builder["fp16_converter"] == "onnxconverter-common"
    assert sidecar.builder["strongly_typed"] is True


def test_tensorrt_11_without_tooling_builds_fp32_and_says_so(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    install("11.1.0.106")
    engine_source = source(onnx_file, tmp_path)
    assert engine_source.key.precision == "fp32"
    runtime = engine_source.load_or_build()
    assert isinstance(runtime, StubRuntime) and runtime.precision == "fp32"
    assert "onnxconverter-common" in runtime.detail
    assert behaviour.parsed_models == [b"onnx-fp32-model-bytes"]


def test_fp16_build_failure_falls_back_to_fp32(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    install("11.1.0.106", ("onnxconverter-common",))
    behaviour.fail_build_when_model_is = b"onnx-fp16-by-onnxconverter-common"
    engine_source = source(onnx_file, tmp_path)
    sidecar = engine_source.build()
    assert behaviour.builds == 2
    assert sidecar.key.precision == "fp16", "filed under what was asked for"
    assert sidecar.built_precision == "fp32"
    assert any("fp16 build failed" in note for note in sidecar.notes)


def test_parse_errors_and_profile_mismatches_are_build_errors(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    install("10.13.3.9")
    behaviour.fail_parse = True
    with pytest.raises(EngineBuildError, match="FancyOp"):
        source(onnx_file, tmp_path, precision="fp32").build()
    behaviour.fail_parse = False
    behaviour.network_inputs = {"images": (-1, 1, -1, -1)}
    with pytest.raises(EngineBuildError, match="axis 1"):
        source(onnx_file, tmp_path, precision="fp32").build()
    assert EngineCache(tmp_path).entries() == []


def test_engine_tensorrt_will_not_load_is_rebuilt(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    install("10.13.3.9")
    engine_source = source(onnx_file, tmp_path)
    engine_source.cache.store(engine_source.key, MODEL, b"bad plan", built_precision="fp16",
                              build_time_s=0, builder={})
    assert engine_source.cache.lookup(engine_source.key, MODEL).status is CacheStatus.HIT
    assert engine_source.load_cached() is None
    assert "did not load" in engine_source.miss_reason
    engine_source.load_or_build()
    assert behaviour.builds == 1
    assert StubRuntime.loaded and StubRuntime.loaded[-1].startswith(b"PLAN:")


def _with_timing_cache(
    install: Callable[..., None], onnx_file: Path, tmp_path: Path, content: bytes
) -> tuple[TensorRtEngineSource, Path]:
    """A TensorRT 10.13 engine source whose timing cache file already holds `content`."""
    install("10.13.3.9")
    engine_source = source(onnx_file, tmp_path)
    timing = engine_source.cache.timing_cache_path(GPU.name, "9.0", "10.13.3.9")
    timing.parent.mkdir(parents=True, exist_ok=True)
    timing.write_bytes(content)
    return engine_source, timing


def test_rejected_timing_cache_only_slows_the_build(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    engine_source, timing = _with_timing_cache(install, onnx_file, tmp_path, b"from another driver")
    behaviour.reject_timing_cache = True
    sidecar = engine_source.build()
    assert sidecar.builder["timing_cache_loaded"] is False
    assert any("timing cache" in note for note in sidecar.notes)
    assert timing.read_bytes() == b"timings", "replaced by this build's timings"


def test_persisted_timing_cache_is_reused_and_merged(
    install: Callable[..., None], behaviour: Behaviour, onnx_file: Path, tmp_path: Path
) -> None:
    engine_source, timing = _with_timing_cache(install, onnx_file, tmp_path, b"earlier")
    sidecar = engine_source.build()
    assert sidecar.builder["timing_cache_loaded"] is True
    assert timing.read_bytes() == b"earlier|earlier"
