"""What this CPU can do that matters for inference: its model name and the ISA flags that decide
whether INT8 or bfloat16 convolutions beat FP32 ones.

Read from /proc/cpuinfo (Linux; elsewhere the flags are simply unknown, which makes every choice
fall back to FP32). ONNX Runtime's INT8 kernels run fastest with a dot-product instruction for
8-bit integers: AVX512-VNNI, AVX-VNNI (the AVX2 encoding, on Alder Lake and later, Zen 5) or AMX.
Without one, u8 x s8 products go through AVX2's vpmaddubsw, which saturates at 16 bits and gains
little over FP32. AMX also has bfloat16 tiles (amx_bf16), which OpenVINO uses for float models.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# The flags worth printing beside a measurement, in the order they are printed.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class CpuFeatures:
    model: str  # "Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC 7763 64-Core Processor", ...
    flags: frozenset[str]

    @property
    def bf16_matrix(self) -> bool:
        """AMX bfloat16 tiles: OpenVINO runs a float model's convolutions on them in bf16.
        (AVX512-BF16 alone only converts and dots vectors; not measured here, so not taken.)"""
        return "amx_bf16" in self.flags

    def describe(self) -> str:
        """"<model>; avx2 avx512f -avx512_vnni ..." (a minus: the flag is absent)."""
        marks = " ".join(flag if flag in self.flags else f"-{flag}" for flag in REPORTED_FLAGS)
        return f"{self.model}; {marks}"


def parse_cpuinfo(text: str) -> CpuFeatures:
    """The first processor's model name and flags ("flags" on x86, "Features" on Arm)."""
    model = ""
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
        if model and flags:
            break
    return CpuFeatures(model=model or "unknown CPU", flags=flags)


@cache
def cpu_features() -> CpuFeatures:
    """This host's features (cached: they cannot change while the process runs)."""
    try:
        return parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuFeatures(model="unknown CPU", flags=frozenset())
