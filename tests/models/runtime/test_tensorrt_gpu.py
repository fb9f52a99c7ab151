"""TensorRT on a real GPU: build, run, agree with ONNX Runtime on the CPU, reuse the cache, and
recover from a damaged one. Skipped (conftest) without CUDA and TensorRT; engine builds make
this module take minutes."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from curator.cli.models import add_models_commands
from models.artifacts import NUDITY_DETECTOR, TEXT_DETECTOR, ModelArtifact
from models.runtime.base import InferenceRuntime, RuntimeInputError
from models.runtime.engine_cache import CacheStatus, EngineCache, sha256_bytes
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from models.runtime.onnxruntime_gpu import OnnxRuntimeGpu
from models.runtime.profiles import SampleShape, profile_for
from models.runtime.select import BuildOnFirstUse, create_runtime, describe_backends
from models.runtime.tensorrt import TensorRtEngineSource
from models.runtime.torch_device import gpu_identity
from tests.models.runtime.inputs import people_batch, text_batch

pytestmark = pytest.mark.gpu

BATCH = (1, 4, 4)  # small profile: quick builds, and batches of 6 exercise chunking


@dataclass(frozen=True)
class Case:
    artifact: ModelArtifact
    sample_shape: SampleShape
    make_inputs: Callable[[int], dict[str, np.ndarray]]
    # atol per precision on 99.9 % of the elements, per named slice of the output
    tolerances: dict[str, dict[str, float]]

    def slices(self, output: np.ndarray) -> dict[str, np.ndarray]:
        if self.artifact is NUDITY_DETECTOR:
            return {"boxes": output[:, :4], "scores": output[:, 4:]}
        return {"probability": output}


CASES = {
    "people": Case(
        NUDITY_DETECTOR, (3, 320, 320), lambda n: {"images": people_batch(n)},
        # boxes in 320-px canvas units, scores 0..1; TF32 makes fp32 engines differ slightly
        {"fp32": {"boxes": 0.5, "scores": 0.01}, "fp16": {"boxes": 2.0, "scores": 0.03}},
    ),
    "text": Case(
        TEXT_DETECTOR, (3, (64, 256, 320), (64, 320, 320)),
        lambda n: {"x": text_batch(n, 256, 320)},
        {"fp32": {"probability": 0.01}, "fp16": {"probability": 0.05}},
    ),
}


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


_BUILT: dict[tuple[str, str], InferenceRuntime] = {}


def built(case_name: str, precision: str, engine_dir: Path) -> InferenceRuntime:
    """One engine per (model, precision) for the whole module: builds take a while."""
    if (case_name, precision) not in _BUILT:
        case = CASES[case_name]
        runtime = create_runtime(case.artifact, batch_profile=BATCH,
                                 sample_shape=case.sample_shape,
                                 precision=precision,  # type: ignore[arg-type]
                                 engine_dir=engine_dir)
        if isinstance(runtime, BuildOnFirstUse):
            runtime.prepare()
        assert runtime.info.runtime == "tensorrt", runtime.info.detail
        _BUILT[(case_name, precision)] = runtime
    return _BUILT[(case_name, precision)]


def reference(case: Case, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return OnnxRuntimeCpu(case.artifact.name, case.artifact.path()).run(inputs)


def assert_close(case: Case, precision: str, actual: dict[str, np.ndarray],
                 expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].shape == expected[name].shape
        assert actual[name].dtype == np.float32
        for part, want in case.slices(expected[name]).items():
            got = case.slices(actual[name])[part]
            error = np.abs(got - want)
            atol = case.tolerances[precision][part]
            assert np.quantile(error, 0.999) <= atol, (part, float(error.max()))
            assert error.mean() <= atol / 4, (part, float(error.mean()))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case_name", sorted(CASES))
def test_engine_matches_onnxruntime_cpu(case_name: str, precision: str, engine_dir: Path) -> None:
    case = CASES[case_name]
    runtime = built(case_name, precision, engine_dir)
    info = runtime.info
    assert info.device.startswith("cuda:0 (")
    if info.precision != precision:  # TensorRT 11 without FP16 tooling, or FP16 refused
        assert precision == "fp16" and "fp32" in info.detail.lower(), info.detail
    inputs = case.make_inputs(3)
    assert_close(case, info.precision, runtime.run(inputs), reference(case, inputs))


def test_dynamic_spatial_dims_and_profile_limits(engine_dir: Path) -> None:
    case = CASES["text"]
    runtime = built("text", "fp32", engine_dir)
    small = {"x": text_batch(2, 96, 128)}
    assert_close(case, "fp32", runtime.run(small), reference(case, small))
    with pytest.raises(RuntimeInputError, match="outside the engine profile"):
        runtime.run({"x": text_batch(1, 480, 480)})


def test_batches_beyond_the_profile_are_chunked(engine_dir: Path) -> None:
    case = CASES["people"]
    runtime = built("people", "fp32", engine_dir)
    inputs = case.make_inputs(6)  # profile max is 4
    whole = runtime.run(inputs)
    parts = [runtime.run({"images": inputs["images"][:4]}),
             runtime.run({"images": inputs["images"][4:]})]
    np.testing.assert_allclose(whole["output0"],
                               np.concatenate([part["output0"] for part in parts]), atol=1e-5)
    assert_close(case, "fp32", whole, reference(case, inputs))


def engine_files(case: Case, precision: str, engine_dir: Path) -> TensorRtEngineSource:
    gpu = gpu_identity()
    assert gpu is not None
    profile = profile_for(case.artifact.input_name, BATCH, case.sample_shape)
    return TensorRtEngineSource(case.artifact.name, case.artifact.path(), profile,
                                precision=precision, cache=EngineCache(engine_dir), gpu=gpu)


def test_second_create_reuses_the_cache(engine_dir: Path) -> None:
    case = CASES["people"]
    first = built("people", "fp16", engine_dir)
    source = engine_files(case, "fp16", engine_dir)
    before = (source.engine_path.stat().st_mtime_ns,
              source.cache.lookup(source.key, case.artifact.name).sidecar)
    second = create_runtime(case.artifact, batch_profile=BATCH, sample_shape=case.sample_shape,
                            precision="fp16", engine_dir=engine_dir)
    assert not isinstance(second, BuildOnFirstUse), "a cached engine loads in create_runtime"
    assert "loaded from cache" in second.info.detail
    after = (source.engine_path.stat().st_mtime_ns,
             source.cache.lookup(source.key, case.artifact.name).sidecar)
    assert after == before, "no rebuild"
    inputs = case.make_inputs(2)
    np.testing.assert_allclose(second.run(inputs)["output0"], first.run(inputs)["output0"],
                               atol=1e-5)


@pytest.mark.parametrize("damage", ["bytes-flipped", "garbage-with-matching-sidecar"])
def test_damaged_engine_is_rebuilt(damage: str, engine_dir: Path, tmp_path: Path) -> None:
    case = CASES["people"]
    built("people", "fp32", engine_dir)
    own_dir = tmp_path / "engines"
    shutil.copytree(engine_dir, own_dir)  # with the timing cache: the rebuild is quick
    source = engine_files(case, "fp32", own_dir)
    if damage == "bytes-flipped":
        data = bytearray(source.engine_path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        source.engine_path.write_bytes(bytes(data))
        expected_miss = CacheStatus.CORRUPT.value
    else:  # passes the hash check, so deserialize_cuda_engine itself must refuse it
        source.cache.store(source.key, case.artifact.name, b"not a plan" * 100,
                           built_precision="fp32", build_time_s=0, builder={})
        expected_miss = "did not load"

    runtime = create_runtime(case.artifact, batch_profile=BATCH, sample_shape=case.sample_shape,
                             precision="fp32", engine_dir=own_dir)
    assert isinstance(runtime, BuildOnFirstUse)
    assert expected_miss in runtime.info.detail
    runtime.prepare()
    assert runtime.info.runtime == "tensorrt" and "built on this host" in runtime.info.detail
    inputs = case.make_inputs(2)
    assert_close(case, "fp32", runtime.run(inputs), reference(case, inputs))
    lookup = source.cache.lookup(source.key, case.artifact.name)
    assert lookup.status is CacheStatus.HIT and lookup.sidecar is not None
    assert lookup.sidecar.engine_sha256 == sha256_bytes(source.engine_path.read_bytes())


def test_build_engines_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="curator")
    add_models_commands(parser.add_subparsers(dest="verb", required=True))
    argv = ["models", "build-engines", "--engine-dir", str(tmp_path), "--max-batch", "2",
            "--model", NUDITY_DETECTOR.name]
    for _ in range(2):  # the second run finds the engine cached
        args = parser.parse_args(argv)
        assert args.run(args) == 0
    out = capsys.readouterr().out
    assert out.count(NUDITY_DETECTOR.name) == 2
    assert len(list(tmp_path.glob("*.engine"))) == 1
    assert len(list(tmp_path.glob("*.engine.json"))) == 1
    assert len(list(tmp_path.glob("timing-*.cache"))) == 1


def test_describe_backends_on_gpu() -> None:
    backends = describe_backends()
    assert backends["default_runtime"] == "tensorrt"
    assert backends["gpu"] and backends["tensorrt"]


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="needs onnxruntime-gpu")
def test_onnxruntime_cuda_provider_matches_cpu() -> None:
    case = CASES["people"]
    gpu = gpu_identity()
    assert gpu is not None
    runtime = OnnxRuntimeGpu(case.artifact.name, case.artifact.path(), device_label=gpu.label)
    assert "CUDAExecutionProvider" in runtime.providers
    assert runtime.info.device == gpu.label and "CUDAExecutionProvider" in runtime.info.detail
    inputs = case.make_inputs(2)
    assert_close(case, "fp32", runtime.run(inputs), reference(case, inputs))
