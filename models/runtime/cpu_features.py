"""What this CPU can do that matters for inference: its model name and the ISA flags that decide
whether INT8 or bfloat16 convolutions beat FP32 ones.

Read from /proc/cpuinfo (Linux; elsewhere the flags are simply unknown, which makes every choice
fall back to FP32). ONNX Runtime's INT8 kernels run fastest with a dot-product instruction for
8-bit integers: AVX512-VNNI, AVX-VNNI (the AVX2 encoding, on Alder Lake and later, Zen 5) or AMX.
Without one, u8 x s8 products go through AVX2's vpmaddubsw, which saturates at 16 bits and gains
little over FP32. OpenVINO runs a float model in bfloat16 natively on AMX's bf16 tiles (amx_bf16)
and on AVX512-BF16's dot products (avx512_bf16: Cooper Lake, Zen 4 and later); elsewhere it can
only emulate bf16, slower than FP32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# The flags worth printing beside a measurement, in the order they are printed.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
                  "amx_bf16")


@dataclass(frozen=True)
class CpuFeatures:
    model: str  # "Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC 7763 64-Core Processor", ...
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        """bfloat16 dot products in hardware: AMX tiles or AVX512-BF16. On both OpenVINO's bf16
        takes less CPU than ONNX Runtime's FP32 for every detector here (1.16-2.4x on a 2-core
        Zen 4 EPYC with AVX512-BF16, 2026-12-07; 1.8-6x on an AMX Xeon, 2026-12-05); on AVX-512
        without either it emulates bf16 and took 2.3-3.2x more (a VNNI Xeon, 2026-12-07)."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

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
