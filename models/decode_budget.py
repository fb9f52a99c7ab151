"""The decode budget: bytes of decoding working memory a process lets run at once.

`models.decode.read_header` costs an image from its header; a process that decodes several
images at once (a Preprocess replica, a batch actor) reserves that cost in one `DecodeBudget`
before decoding, so its peak memory stays bounded whatever arrives. The default budget is a
share of the memory the process may use.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curator.contracts.errors import ImageError


class DecodeBusy(ImageError):
    """No room in the decode budget came in time: the replica is busy, the image is fine."""

    status = 503
    code = "decode_busy"


class DecodeBudget:
    """Bytes of decoding working memory a process lets run at once, shared by its threads.

    `reserve(cost)` waits until the images being decoded leave room for `cost`, first come first
    served, so a replica's peak memory stays near its baseline plus the budget whatever arrives;
    a cost over the whole budget is refused (`read_header` with `max_decode_bytes` refuses such an
    image before it gets here). A wait is bounded: after `timeout_s` the image gives up its place
    in the queue with `decode_busy`, so a replica flooded with large images answers each late
    one in bounded time instead of holding it until the client's own timeout."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a decode budget needs a positive capacity")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0  # the most reserved at once
        self.waits = 0  # reservations that had to wait for room
        self.timeouts = 0  # reservations that gave up waiting (DecodeBusy)
        self._ready = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def reserve(self, cost: int, timeout_s: float | None = None) -> Iterator[bool]:
        """Hold `cost` bytes for the block; gives whether it had to wait for them. Raises
        `DecodeBusy` when no room came within `timeout_s` (None: wait as long as it takes)."""
        if cost > self.capacity:
            raise ValueError(f"{cost} bytes exceed the whole budget of {self.capacity}")
        ticket = object()
        waited = False
        with self._ready:
            self._queue.append(ticket)
            if self._queue[0] is not ticket or self.in_use + cost > self.capacity:
                self.waits += 1
                waited = True
            if not self._ready.wait_for(
                    lambda: self._queue[0] is ticket and self.in_use + cost <= self.capacity,
                    timeout=timeout_s):
                self._queue.remove(ticket)
                self.timeouts += 1
                self._ready.notify_all()  # the one behind may be first in line now
                raise DecodeBusy(
                    f"the replica's decode memory stayed full for {timeout_s:g} s "
                    f"({cost} bytes asked); retry the image", code="decode_busy")
            self._queue.popleft()
            self.in_use += cost
            self.peak = max(self.peak, self.in_use)
            self._ready.notify_all()  # the next in line may fit as well
        try:
            yield waited
        finally:
            with self._ready:
                self.in_use -= cost
                self._ready.notify_all()


# The share of a replica's memory its decode budget takes by default, and the bounds on it.
DEFAULT_DECODE_SHARE = 0.25
MIN_DEFAULT_DECODE_BYTES = 1 * 2**30
MAX_DEFAULT_DECODE_BYTES = 16 * 2**30


def default_decode_budget(replica_memory: float | None = None) -> int:
    """A quarter of the memory the replica may use: its Ray `memory` reservation where it has one,
    else the host's (the cgroup limit where lower than RAM); between 1 and 16 GiB."""
    memory = replica_memory or memory_available()
    share = int(memory * DEFAULT_DECODE_SHARE)
    return max(MIN_DEFAULT_DECODE_BYTES, min(MAX_DEFAULT_DECODE_BYTES, share))


def memory_available() -> int:
    """This host's RAM, or the memory limit of the cgroup this process runs in where lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max",
                       "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
        break
    return int(total)
