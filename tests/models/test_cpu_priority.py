"""models/cpu_priority.py: slack work runs at a lower priority on its own threads, never on the
thread that called for it."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from models.cpu_priority import SLACK_NICENESS, run_as_slack_work, slack_niceness

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux_only
def test_slack_work_runs_lowered_and_the_caller_keeps_its_priority() -> None:
    caller = _niceness()
    with ThreadPoolExecutor(1) as pool:
        lowered, niceness = pool.submit(lambda: (run_as_slack_work(), _niceness())).result()
    assert lowered is True
    assert niceness == slack_niceness() == min(19, caller + SLACK_NICENESS)
    assert _niceness() == caller  # only the pool's thread was lowered


@linux_only
def test_lowering_is_idempotent() -> None:
    def twice() -> list[int]:
        run_as_slack_work()
        first = _niceness()
        run_as_slack_work()
        return [first, _niceness()]

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(twice).result() == [slack_niceness()] * 2
