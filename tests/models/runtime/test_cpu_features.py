"""CPU flags from /proc/cpuinfo text, and the CPU precision each kind of host gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import artifacts
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
EPYC_GENOA = """\
model name\t: AMD EPYC 9R14
flags\t\t: avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni
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
AVX512_BF16_HOST = parse_cpuinfo(EPYC_GENOA)  # bf16 dot products without AMX
AVX2_HOST = parse_cpuinfo(EPYC_ROME)
int8_model = int8_variant(TEXT_DETECTOR)
needs_int8_file = pytest.mark.skipif(
    int8_model is None or not int8_model.local_path.is_file(), reason="no INT8 text detector")


def test_flags_and_model_of_the_first_processor() -> None:
    assert VNNI_HOST.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"} <= VNNI_HOST.flags
    assert VNNI_HOST.describe() == (
        "Intel(R) Xeon(R) Platinum 8480+; avx2 avx512f avx512_vnni avx_vnni -avx512_bf16 amx_int8 "
        "amx_bf16")
    assert AVX2_HOST.describe() == (
        "AMD EPYC 7R32; avx2 -avx512f -avx512_vnni -avx_vnni -avx512_bf16 -amx_int8 -amx_bf16")


@pytest.mark.parametrize(("text", "native"), [(SAPPHIRE_RAPIDS, True), (EPYC_GENOA, True),
                                               (CASCADE_LAKE, False), (EPYC_ROME, False),
                                               (GRAVITON, False)],
                         ids=["amx", "avx512-bf16", "avx512-vnni", "avx2-only", "arm"])
def test_native_bf16_needs_amx_or_avx512_bf16(text: str, native: bool) -> None:
    assert parse_cpuinfo(text).native_bf16 is native


def test_unknown_cpu_reads_as_no_flags() -> None:
    parsed = parse_cpuinfo(GRAVITON)
    assert parsed.model == "unknown CPU" and "asimddp" in parsed.flags
    assert cpu_features().model  # this host's, whatever it is


@needs_int8_file
def test_auto_takes_fp32_for_the_text_detector_even_with_an_int8_sibling() -> None:
    """The INT8 text model runs only when asked for: FP32 with its subnormals zeroed costs a
    fifth more and misses less text; and bf16 changed a dev-set verdict, so no host's native
    bf16 takes it either (models.runtime.select.choose_cpu_model)."""
    hosts = (VNNI_HOST, AVX512_BF16_HOST, VNNI_ONLY_HOST, AVX2_HOST)
    for host, openvino in [(host, openvino) for host in hosts for openvino in (False, True)]:
        chosen = choose_cpu_model(TEXT_DETECTOR, "auto", host, openvino=openvino)
        assert (chosen.path, chosen.precision, chosen.runtime) == (
            TEXT_DETECTOR.path(), "fp32", "onnxruntime")


@pytest.mark.parametrize("host", [VNNI_HOST, AVX512_BF16_HOST], ids=["amx", "avx512-bf16"])
def test_auto_takes_openvino_bf16_with_native_bf16_for_the_models_marked(
        host: CpuFeatures) -> None:
    """Native bf16 and OpenVINO: a model marked auto_bf16 runs its FP32 file in bf16, the
    others stay FP32 on ONNX Runtime; without native bf16 (emulated: slower) every model does."""
    assert NUDITY_DETECTOR.auto_bf16 and not TEXT_DETECTOR.auto_bf16
    chosen = choose_cpu_model(NUDITY_DETECTOR, "auto", host, openvino=True)
    assert (chosen.path, chosen.precision, chosen.runtime) == (
        NUDITY_DETECTOR.path(), "bf16", "openvino")
    assert "native bf16" in chosen.reason
    assert choose_cpu_model(TEXT_DETECTOR, "auto", host, openvino=True).runtime == "onnxruntime"
    for other in (VNNI_ONLY_HOST, AVX2_HOST):
        chosen = choose_cpu_model(NUDITY_DETECTOR, "auto", other, openvino=True)
        assert (chosen.precision, chosen.runtime) == ("fp32", "onnxruntime")


def test_the_models_marked_for_bf16_are_those_whose_verdicts_held() -> None:
    """`curator eval --cpu-precision bf16` against fp32 on the dev set (2026-12-07): the text
    detector and NanoDet each changed a verdict, the others none (models/artifacts.py)."""
    marked = {artifact.name for artifact in artifacts.all_artifacts() if artifact.auto_bf16}
    assert marked == {NUDITY_DETECTOR.name, artifacts.PALM_DETECTOR.name,
                      artifacts.FACE_DETECTOR.name}


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


@pytest.mark.parametrize(("host", "artifact", "runtime_name", "precision"),
                         [(VNNI_ONLY_HOST, TEXT_DETECTOR, "onnxruntime", "fp32"),
                          (AVX2_HOST, NUDITY_DETECTOR, "onnxruntime", "fp32"),
                          (VNNI_HOST, TEXT_DETECTOR, "onnxruntime", "fp32"),
                          (VNNI_HOST, NUDITY_DETECTOR, "openvino", "bf16"),
                          (AVX512_BF16_HOST, NUDITY_DETECTOR, "openvino", "bf16")],
                         ids=["vnni-text", "avx2-nudity", "amx-text", "amx-nudity",
                              "avx512-bf16-nudity"])
def test_create_runtime_reports_the_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           host: CpuFeatures, artifact: ModelArtifact,
                                           runtime_name: str, precision: str) -> None:
    monkeypatch.setattr(select, "gpu_identity", lambda: None)
    monkeypatch.setattr(select, "cpu_features", lambda: host)
    monkeypatch.setattr(select, "openvino_available", lambda: True)
    runtime = create_runtime(artifact, prefer="onnxruntime", engine_dir=tmp_path,
                             intra_op_threads=1)
    info = runtime.info
    if runtime_name == "openvino" and not compiles_bf16():
        precision = "fp32"  # OpenVINO compiles f32 on this CPU and says so
    assert (info.model, info.runtime, info.device, info.precision) == (
        artifact.name, runtime_name, "cpu", precision)
    assert info.as_dict()["precision"] == precision
    outputs = runtime.run({artifact.input_name: np.zeros((1, 3, 64, 64), dtype=np.float32)})
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
