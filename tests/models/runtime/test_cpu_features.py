"""CPU flags from /proc/cpuinfo text, and the CPU precision each kind of host gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.artifacts import NUDITY_DETECTOR, TEXT_DETECTOR, ModelArtifact, int8_variant
from models.runtime import select
from models.runtime.base import RuntimeInfo
from models.runtime.cpu_features import CpuFeatures, cpu_features, parse_cpuinfo
from models.runtime.openvino_cpu import compiles_bf16
from models.runtime.select import choose_cpu_model, create_runtime
from models.runtime.torch_device import GpuIdentity

SAPPHIRE_RAPIDS = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx_vnni amx_bf16 amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx_vnni amx_bf16 amx_int8
"""
EPYC_ROME = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7R32
flags\t\t: fpu sse sse2 avx avx2 fma sha_ni
"""
CASCADE_LAKE = """\
model name\t: Intel(R) Xeon(R) Platinum 8275CL CPU @ 3.00GHz
flags\t\t: avx avx2 avx512f avx512bw avx512_vnni
"""
GRAVITON = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes sha1 sha2 crc32 atomics asimddp
"""

VNNI_HOST = parse_cpuinfo(SAPPHIRE_RAPIDS)  # VNNI and AMX (INT8 and BF16 tiles)
VNNI_ONLY_HOST = parse_cpuinfo(CASCADE_LAKE)
AVX2_HOST = parse_cpuinfo(EPYC_ROME)
int8_model = int8_variant(TEXT_DETECTOR)
needs_int8_file = pytest.mark.skipif(
    int8_model is None or not int8_model.local_path.is_file(), reason="no INT8 text detector")


def test_flags_and_model_of_the_first_processor() -> None:
    assert VNNI_HOST.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"} <= VNNI_HOST.flags
    assert VNNI_HOST.describe() == (
        "Intel(R) Xeon(R) Platinum 8480+; avx2 avx512f avx512_vnni avx_vnni amx_int8 amx_bf16")
    assert AVX2_HOST.describe() == (
        "AMD EPYC 7R32; avx2 -avx512f -avx512_vnni -avx_vnni -amx_int8 -amx_bf16")


@pytest.mark.parametrize(("text", "tiles"), [(SAPPHIRE_RAPIDS, True), (CASCADE_LAKE, False),
                                              (EPYC_ROME, False), (GRAVITON, False)],
                         ids=["amx", "avx512-vnni", "avx2-only", "arm"])
def test_bf16_matrix_needs_amx_bf16(text: str, tiles: bool) -> None:
    assert parse_cpuinfo(text).bf16_matrix is tiles


def test_unknown_cpu_reads_as_no_flags() -> None:
    parsed = parse_cpuinfo(GRAVITON)
    assert parsed.model == "unknown CPU" and "asimddp" in parsed.flags
    assert cpu_features().model  # this host's, whatever it is


@needs_int8_file
def test_auto_takes_fp32_without_amx_bf16_even_with_an_int8_sibling() -> None:
    """The INT8 text model runs only when asked for: FP32 with its subnormals zeroed costs a
    fifth more and misses less text (models.runtime.select.choose_cpu_model)."""
    for host in (VNNI_HOST, VNNI_ONLY_HOST, AVX2_HOST):  # VNNI_HOST: AMX, OpenVINO missing
        chosen = choose_cpu_model(TEXT_DETECTOR, "auto", host, openvino=False)
        assert (chosen.path, chosen.precision, chosen.runtime) == (
            TEXT_DETECTOR.path(), "fp32", "onnxruntime")


@pytest.mark.parametrize("artifact", [TEXT_DETECTOR, NUDITY_DETECTOR], ids=["text", "nudity"])
def test_auto_takes_openvino_bf16_on_amx(artifact: ModelArtifact) -> None:
    """AMX bf16 tiles and OpenVINO: every model (with an INT8 sibling or not) runs its FP32
    file in bf16; a VNNI host without AMX keeps ONNX Runtime."""
    chosen = choose_cpu_model(artifact, "auto", VNNI_HOST, openvino=True)
    assert (chosen.path, chosen.precision, chosen.runtime) == (
        artifact.path(), "bf16", "openvino")
    assert "AMX" in chosen.reason
    for host in (VNNI_ONLY_HOST, AVX2_HOST):
        assert choose_cpu_model(artifact, "auto", host, openvino=True).runtime == "onnxruntime"


def test_bf16_asked_for_without_openvino_runs_fp32() -> None:
    chosen = choose_cpu_model(NUDITY_DETECTOR, "bf16", VNNI_HOST, openvino=False)
    assert (chosen.precision, chosen.runtime) == ("fp32", "onnxruntime")
    assert "openvino not installed" in chosen.reason
    # The operator may ask for bf16 on any host; OpenVINO then computes what the CPU can.
    assert choose_cpu_model(NUDITY_DETECTOR, "bf16", AVX2_HOST, openvino=True).runtime == (
        "openvino")


@needs_int8_file
def test_the_operator_overrides_the_host() -> None:
    assert int8_model is not None
    assert choose_cpu_model(TEXT_DETECTOR, "int8", AVX2_HOST).path == int8_model.path()
    for requested in ("int8", "fp32"):  # ONNX Runtime, AMX and OpenVINO or not
        chosen = choose_cpu_model(TEXT_DETECTOR, requested, VNNI_HOST, openvino=True)  # type: ignore[arg-type]
        assert (chosen.precision, chosen.runtime) == (requested, "onnxruntime")


def test_a_model_without_int8_sibling_stays_fp32() -> None:
    for requested in ("auto", "int8"):
        chosen = choose_cpu_model(NUDITY_DETECTOR, requested, VNNI_ONLY_HOST)  # type: ignore[arg-type]
        assert (chosen.path, chosen.precision) == (NUDITY_DETECTOR.path(), "fp32")


@needs_int8_file
def test_a_missing_int8_file_falls_back_to_fp32(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setattr("models.artifacts.WEIGHTS_DIR", tmp_path)  # where bundled files live
    chosen = choose_cpu_model(TEXT_DETECTOR, "int8", VNNI_ONLY_HOST)
    assert (chosen.path, chosen.precision) == (TEXT_DETECTOR.path(), "fp32")
    assert "missing" in chosen.reason


@needs_int8_file
@pytest.mark.parametrize(("host", "runtime_name", "precision"),
                         [(VNNI_ONLY_HOST, "onnxruntime", "fp32"),
                          (AVX2_HOST, "onnxruntime", "fp32"),
                          (VNNI_HOST, "openvino", "bf16")],
                         ids=["vnni", "avx2", "amx"])
def test_create_runtime_reports_the_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           host: CpuFeatures, runtime_name: str,
                                           precision: str) -> None:
    monkeypatch.setattr(select, "gpu_identity", lambda: None)
    monkeypatch.setattr(select, "cpu_features", lambda: host)
    monkeypatch.setattr(select, "openvino_available", lambda: True)
    runtime = create_runtime(TEXT_DETECTOR, prefer="onnxruntime", engine_dir=tmp_path,
                             intra_op_threads=1)
    info = runtime.info
    if runtime_name == "openvino" and not compiles_bf16():
        precision = "fp32"  # OpenVINO compiles f32 on this CPU and says so
    assert (info.model, info.runtime, info.device, info.precision) == (
        TEXT_DETECTOR.name, runtime_name, "cpu", precision)
    assert info.as_dict()["precision"] == precision
    outputs = runtime.run({"x": np.zeros((1, 3, 64, 64), dtype=np.float32)})
    assert all(value.dtype == np.float32 for value in outputs.values())


@needs_int8_file
def test_gpu_runtimes_keep_the_fp32_file(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """On a GPU host ORT's CUDA/TensorRT providers get the FP32 ONNX, VNNI or not."""
    loaded: list[Path] = []

    class RecordingGpuRuntime:
        def __init__(self, name: str, onnx_path: Path, **_: object) -> None:
            loaded.append(onnx_path)
            self.info = RuntimeInfo(name, "onnxruntime", "cuda:0", "fp32")

    monkeypatch.setattr(select, "gpu_identity", lambda: GpuIdentity(0, "NVIDIA Test", "9.0"))
    monkeypatch.setattr(select, "gpu_providers_available", lambda: True)
    monkeypatch.setattr(select, "tensorrt_version", lambda: None)
    monkeypatch.setattr(select, "OnnxRuntimeGpu", RecordingGpuRuntime)
    monkeypatch.setattr(select, "cpu_features", lambda: VNNI_HOST)
    create_runtime(TEXT_DETECTOR, prefer="onnxruntime", engine_dir=tmp_path)
    assert loaded == [TEXT_DETECTOR.path()]


def test_cpu_precision_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cpu_precision"):
        create_runtime(TEXT_DETECTOR, cpu_precision="int4",  # type: ignore[arg-type]
                       engine_dir=tmp_path)
