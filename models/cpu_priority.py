"""Which work a contended core serves first: the critical path of a listing.

A lone listing's answer waits for its slowest model, the text detector (about 120 of the 310 CPU
ms an image takes on the 2-core Xeon). The other detectors and the quality scorer run beside it
with time to spare, about as much work again between them. On two cores those three threads were
shared three ways by the scheduler, so the text detector ran late while the rest finished early.
Run at a lower priority, the work with slack leaves the text detector a core of its own and
shares the other.

Only the order changes, not the work: a lowered thread still gets every cycle no other thread
wants, and under contention the kernel's fair scheduler still gives it its weight's share (nice
+10 weighs about a tenth of nice 0), so it is never starved. Linux schedules each thread on its
own (`setpriority` on a thread id); elsewhere this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)

SLACK_NICENESS = 10  # added to the process's own niceness for work that is off the critical path
_MAX_NICENESS = 19
# The niceness this process started with (its importing thread's): what slack work is lowered
# from, so that lowering stays idempotent however often it is asked for.
_BASE_NICENESS = os.getpriority(os.PRIO_PROCESS, 0) if sys.platform == "linux" else 0


def slack_niceness() -> int:
    return min(_MAX_NICENESS, _BASE_NICENESS + SLACK_NICENESS)


def run_as_slack_work() -> bool:
    """Lower the calling thread to `slack_niceness()` (Linux). True when it runs there now.

    Cheap enough to call per batch (one or two system calls). Raising a priority back needs a
    privilege, so call it only on threads that do nothing but slack work.
    """
    if sys.platform != "linux":
        return False
    thread = threading.get_native_id()
    target = slack_niceness()
    try:
        if os.getpriority(os.PRIO_PROCESS, thread) < target:
            os.setpriority(os.PRIO_PROCESS, thread, target)
    except OSError as error:  # a sandbox that forbids it: the default order then
        logger.warning("could not lower thread %d's priority: %s", thread, error)
        return False
    return True
