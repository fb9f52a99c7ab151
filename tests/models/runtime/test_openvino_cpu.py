"""OpenVINO CPU sessions: unpinned threads, and the same answers from sessions called side by side
(the extractor's detector threads) as one after another."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from models.artifacts import FACE_DETECTOR, NUDITY_DETECTOR
from models.runtime.select import openvino_available

pytestmark = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed")


def _session(artifact, threads: int = 1):  # type: ignore[no-untyped-def]
    from models.runtime.openvino_cpu import OpenVinoCpu

    return OpenVinoCpu(artifact.name, artifact.path(), threads=threads, precision="bf16")


def _input(artifact, seed: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    height, width = artifact.input_size
    values = np.random.default_rng(seed).random((1, 3, height, width), dtype=np.float32)
    return {artifact.input_name: values}


def test_sessions_leave_their_threads_unpinned() -> None:
    # Pinned, every one-thread session of a process ran on the same core, so the extractor's
    # detector threads took turns instead of overlapping (models/runtime/openvino_cpu.py).
    for artifact in (NUDITY_DETECTOR, FACE_DETECTOR):
        session = _session(artifact)
        assert session._compiled.get_property("ENABLE_CPU_PINNING") is False
        assert session._compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_sessions_side_by_side_answer_as_one_after_another() -> None:
    sessions = {artifact.name: (_session(artifact), artifact)
                for artifact in (NUDITY_DETECTOR, FACE_DETECTOR)}
    feeds = {name: [_input(artifact, seed) for seed in range(3)]
             for name, (_, artifact) in sessions.items()}
    alone = {name: [session.run(feed) for feed in feeds[name]]
             for name, (session, _) in sessions.items()}
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(lambda s, f: [s.run(x) for x in f], session, feeds[name])
                   for name, (session, _) in sessions.items()}
        together = {name: future.result() for name, future in futures.items()}
    for name, answers in alone.items():
        for mine, theirs in zip(answers, together[name], strict=True):
            assert mine.keys() == theirs.keys()
            for key in mine:
                np.testing.assert_array_equal(mine[key], theirs[key])
