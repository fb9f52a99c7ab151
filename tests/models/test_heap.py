"""models/heap.py: with the fixed mmap threshold a freed full-size decode buffer goes back to the
OS; with glibc's dynamic default the heap keeps it. Each case in a fresh interpreter, since the
threshold is process state and glibc's adjusts to what the process has freed before."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from models.heap import (
    BRISQUE_MMAP_THRESHOLD_BYTES,
    DECODE_MMAP_THRESHOLD_BYTES,
    return_large_buffers,
)

ROOT = Path(__file__).resolve().parents[2]

# Frees a 16 MiB buffer (which raises glibc's dynamic threshold past 15 MiB), then allocates,
# touches and frees 15 MiB, and prints how much of those 15 MiB the process still holds.
_RETAINED_SCRIPT = """
import sys
import numpy as np
import psutil
from models.heap import return_large_buffers
if sys.argv[1] == "fixed":
    assert return_large_buffers(4 << 20)
process = psutil.Process()
first = np.ones(16 << 20, np.uint8)
del first
before = process.memory_info().rss
second = np.ones(15 << 20, np.uint8)
del second
print((process.memory_info().rss - before) / 2**20)
"""


def _retained_mib(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", _RETAINED_SCRIPT, mode], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    return float(done.stdout.strip().splitlines()[-1])


glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the mmap threshold is glibc's")


@glibc_only
def test_the_fixed_threshold_returns_a_freed_decode_buffer_that_the_default_keeps():
    # The default is measured too, so the test shows the ratchet it removes, not just a number.
    assert _retained_mib("default") > 12
    assert _retained_mib("fixed") < 2


@glibc_only
def test_the_working_buffers_stay_below_their_stages_threshold():
    # Mapping a buffer faults it in anew on every use: a model copy (640 x 640 x 3 bytes) stays
    # on Preprocess's heap, a full-size decode does not; BRISQUE's 1 Mpx float64 maps stay on
    # the scorer's.
    assert 640 * 640 * 3 < DECODE_MMAP_THRESHOLD_BYTES < 1400 * 1000 * 3
    assert BRISQUE_MMAP_THRESHOLD_BYTES > 2**20 * 8
    assert return_large_buffers(DECODE_MMAP_THRESHOLD_BYTES)


def test_a_threshold_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        return_large_buffers(0)
