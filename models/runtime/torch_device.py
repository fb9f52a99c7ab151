"""Which device torch code runs on, and which GPU this process sees.

Inside a Ray Serve replica that asked for `num_gpus`, Ray sets CUDA_VISIBLE_DEVICES to the GPU(s)
it assigned, so device index 0 is always "our" GPU; nothing here picks among several cards.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class GpuIdentity:
    """What makes a TensorRT engine portable or not: the card's name and its architecture."""

    index: int
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "major.minor", e.g. "9.0"

    @property
    def label(self) -> str:
        """The `device` string runtimes report: "cuda:0 (NVIDIA H100 80GB HBM3)"."""
        return f"cuda:{self.index} ({self.name})"


def cuda_available() -> bool:
    return torch.cuda.is_available()


@lru_cache(maxsize=8)
def gpu_identity(index: int = 0) -> GpuIdentity | None:
    """The visible GPU at `index`, or None without CUDA. Cached: a process never changes GPU."""
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return None
    major, minor = torch.cuda.get_device_capability(index)
    return GpuIdentity(index, torch.cuda.get_device_name(index), f"{major}.{minor}")


def torch_device(index: int = 0) -> torch.device:
    """CUDA when a GPU is visible, else the CPU: the device the scorer's torch code uses."""
    if gpu_identity(index) is not None:
        return torch.device("cuda", index)
    return torch.device("cpu")
