"""How much freed memory a decoding process keeps: large buffers go back to the OS at once.

glibc serves an allocation over its mmap threshold (128 KiB at start) with a mapping of its own,
returned to the OS when freed. But the threshold is dynamic: freeing such a buffer raises it to
that buffer's size (up to 32 MiB), and the trim threshold to twice that. After the first large
decode, buffers of that size come from the heap, and each thread's arena keeps up to twice the
largest one it has freed. A Preprocess replica's RSS then steps up with the largest photo each of
its threads has decoded and holds there (issue 13's soak: 336 -> 358 MiB in minute 6).

A fixed threshold ends the ratchet: it also keeps the trim threshold at its 128 KiB default, so
free memory at the top of the heap goes back too. Where to fix it depends on what the stage
allocates, measured on the 2-core Xeon:
- Preprocess, 4 MiB: a model copy (640 x 640 x 3, 1.2 MB) and the measurements' working arrays
  stay on the heap, reused without a page fault; a full-size decode (1.4 MP RGB and up) is mapped
  and given back. 4 threads decoding 800 dev-set photos: RSS flat at 190 MiB (default: 179-206,
  stepping), CPU within 3-7 % of the default. At 128 KiB it was as flat for 42 % more CPU (every
  buffer faulted in anew); at 16 MiB it stepped again (193 -> 224).
- The quality scorer, 16 MiB: BRISQUE's full-map temporaries are 8 MiB in a pass of 1 Mpx
  (float64), and mapping them cost 65 % more CPU at 4 MiB. At 16 MiB, after its warm-up
  (models/scorer.py), 72 random batches of 1-16 dev-set photos held RSS at 672 MiB throughout
  for about 5 % more CPU; by default it climbed 636 -> 687, and 690 -> 720 after the warm-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

DECODE_MMAP_THRESHOLD_BYTES = 4 << 20  # Preprocess (decoding and measuring)
BRISQUE_MMAP_THRESHOLD_BYTES = 16 << 20  # the quality scorer
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def return_large_buffers(threshold_bytes: int) -> bool:
    """Fix this process's mmap threshold at `threshold_bytes` (glibc only). True when set;
    False where the C library has no `mallopt` or refuses the value: the process then keeps
    glibc's default, which only costs memory."""
    if threshold_bytes <= 0:
        raise ValueError(f"the mmap threshold must be positive, not {threshold_bytes}")
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        logger.info("no mallopt in this C library: freed buffers follow its own policy")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, threshold_bytes) != 1:  # mallopt returns 1 on success
        logger.warning("mallopt refused an mmap threshold of %d bytes", threshold_bytes)
        return False
    return True
