"""GPU tests here (`@pytest.mark.gpu`) skip cleanly unless CUDA and TensorRT are both present."""

from __future__ import annotations

import importlib.util

import pytest
import torch


def gpu_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("tensorrt") is None:
        return "needs TensorRT (pip install -e '.[gpu]')"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A runtest hook in this conftest only sees the items under this directory.
    if item.get_closest_marker("gpu") is not None:
        reason = gpu_skip_reason()
        if reason is not None:
            pytest.skip(reason)
