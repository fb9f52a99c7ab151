"""The AttributeExtractor with its detectors side by side on threads: the same attributes and
boxes as one after another, on real photos (benchmarks/devset), and failures raised as before."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import pytest

from models.cpu_priority import slack_niceness
from models.detectors.base import Detections
from models.extractor import EXTRACTOR_MODELS, AttributeExtractor, Extraction
from models.preprocess import ModelInputs
from models.runtime.base import RuntimeInfo
from models.runtime.request import RuntimeRequest

# Every 24th dev-set photo (12): white packshots and busy photos with people, text and objects.
DEVSET_STEP = 24


@cache
def devset_inputs() -> tuple[ModelInputs, ...]:
    from curator.core.evaluation import load_devset
    from models.preprocess import Preprocessor

    preprocessor = Preprocessor()
    return tuple(preprocessor.run(image.path.read_bytes()).model_inputs
                 for image in load_devset()[::DEVSET_STEP])


@pytest.fixture(scope="module")
def sequential() -> AttributeExtractor:
    return AttributeExtractor.create(list(EXTRACTOR_MODELS.in_order()),
                                     RuntimeRequest(8, cpu_threads=1))


@pytest.fixture(scope="module")
def concurrent(sequential: AttributeExtractor) -> Iterator[AttributeExtractor]:
    extractor = AttributeExtractor(sequential.detectors, detector_threads=2)
    yield extractor
    extractor.close()


def batches(inputs: Sequence[ModelInputs], size: int) -> list[Sequence[ModelInputs]]:
    return [inputs[start:start + size] for start in range(0, len(inputs), size)]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_concurrent_detectors_find_exactly_what_sequential_ones_do(
    sequential: AttributeExtractor, concurrent: AttributeExtractor, batch_size: int
) -> None:
    inputs = devset_inputs()
    assert len(inputs) >= 8
    one_by_one: list[Extraction] = []
    side_by_side: list[Extraction] = []
    for batch in batches(inputs, batch_size):
        one_by_one.extend(sequential.extract(batch))
        side_by_side.extend(concurrent.extract(batch))
    # Attributes in the same order too (dicts compare equal in any order).
    assert [list(e.attributes.items()) for e in side_by_side] == [
        list(e.attributes.items()) for e in one_by_one]
    assert [e.boxes for e in side_by_side] == [e.boxes for e in one_by_one]
    # The photos exercise every detector: boxes of each kind were found somewhere.
    kinds = {box.kind for extraction in one_by_one for box in extraction.boxes}
    assert len(kinds) >= 2, kinds


# --- failures ----------------------------------------------------------------------------------

INFO = RuntimeInfo("fake", "onnxruntime", "cpu", "fp32")


@dataclass
class FakeDetector:
    """Answers nothing, or raises `error`; records that it ran."""

    error: Exception | None = None
    calls: list[int] = field(default_factory=list)

    @property
    def runtime_info(self) -> RuntimeInfo:
        return INFO

    def detect(self, batch: Sequence[ModelInputs]) -> list[Detections]:
        self.calls.append(len(batch))
        if self.error is not None:
            raise self.error
        return [Detections(attributes={}) for _ in batch]


def one_input() -> list[ModelInputs]:
    return [devset_inputs()[0]]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_a_failing_detector_raises_its_own_error(threads: int) -> None:
    broken = RuntimeError("session lost")
    extractor = AttributeExtractor(
        {"text": FakeDetector(), "objects": FakeDetector(broken), "nudity": FakeDetector()},
        detector_threads=threads,
    )
    with pytest.raises(RuntimeError) as raised:
        extractor.extract(one_input())
    assert raised.value is broken
    extractor.close()


def test_the_first_failure_in_the_detectors_order_is_raised_after_all_have_finished() -> None:
    first, second = ValueError("first"), RuntimeError("second")
    detectors = {"text": FakeDetector(first), "objects": FakeDetector(second),
                 "nudity": FakeDetector()}
    extractor = AttributeExtractor(detectors, detector_threads=3)
    with pytest.raises(ValueError) as raised:
        extractor.extract(one_input())
    assert raised.value is first
    # None is left running into the next batch.
    assert all(detector.calls == [1] for detector in detectors.values())
    extractor.close()


def test_the_extractor_works_on_after_a_failure() -> None:
    flaky = FakeDetector(RuntimeError("once"))
    extractor = AttributeExtractor({"text": FakeDetector(), "nudity": flaky}, detector_threads=2)
    with pytest.raises(RuntimeError):
        extractor.extract(one_input())
    flaky.error = None
    assert len(extractor.extract(one_input())) == 1
    assert flaky.calls == [1, 1]
    extractor.close()


def test_threads_are_at_least_one_and_at_most_one_a_detector() -> None:
    with pytest.raises(ValueError):
        AttributeExtractor({"text": FakeDetector()}, detector_threads=0)
    assert AttributeExtractor({"text": FakeDetector()}, detector_threads=4).detector_threads == 1


# --- warm-up -----------------------------------------------------------------------------------


def test_warm_up_runs_every_detector_on_the_batch_size_twice() -> None:
    detectors = {"text": FakeDetector(), "objects": FakeDetector()}
    extractor = AttributeExtractor(detectors, detector_threads=2)
    extractor.warm_up(3)
    assert [detector.calls for detector in detectors.values()] == [[3, 3], [3, 3]]
    extractor.close()


def test_warm_up_on_the_real_detectors_leaves_their_answers_unchanged(
    sequential: AttributeExtractor,
) -> None:
    """Noise frames through every real detector at batch 2 (nothing in them trips a detector),
    and the photos are answered exactly as before."""
    photos = list(devset_inputs()[:3])
    before = sequential.extract(photos)
    sequential.warm_up(2)
    after = sequential.extract(photos)
    assert [e.attributes for e in after] == [e.attributes for e in before]
    assert [e.boxes for e in after] == [e.boxes for e in before]


def test_the_served_extractor_warms_up_whenever_its_batch_grows() -> None:
    """The deployment's own class (outside Serve): a user_config whose max_batch_size exceeds
    what the replica has run warms it up to that size first; a smaller one does not."""
    from deployments.extractor import AttributeExtractor as ExtractorDeployment

    replica = ExtractorDeployment.func_or_class(  # type: ignore[attr-defined]
        ["text"], RuntimeRequest(4, cpu_threads=1))
    warmed: list[int] = []
    detector = replica._extractor.detectors["text"]
    replica._extractor.detectors["text"] = RecordingDetector(detector, warmed)
    replica.reconfigure({"max_batch_size": 2, "batch_wait_timeout_s": 0.0})
    assert warmed == [2, 2]
    replica.reconfigure({"max_batch_size": 1, "batch_wait_timeout_s": 0.0})
    assert warmed == [2, 2]
    replica.reconfigure({"max_batch_size": 4, "batch_wait_timeout_s": 0.0})
    assert warmed == [2, 2, 4, 4]
    with pytest.raises(ValueError, match="exceeds the 4"):
        replica.reconfigure({"max_batch_size": 8, "batch_wait_timeout_s": 0.0})
    assert warmed == [2, 2, 4, 4]


@dataclass
class RecordingDetector:
    """A real detector that also records the batch sizes it ran."""

    detector: object
    batch_sizes: list[int]

    @property
    def runtime_info(self) -> RuntimeInfo:
        return self.detector.runtime_info  # type: ignore[attr-defined]

    def detect(self, batch: Sequence[ModelInputs]) -> list[Detections]:
        self.batch_sizes.append(len(batch))
        return self.detector.detect(batch)  # type: ignore[attr-defined]


# --- which thread runs what --------------------------------------------------------------------


@dataclass
class ThreadRecordingDetector(FakeDetector):
    """Records the thread it ran on and that thread's niceness."""

    ran_on: list[tuple[int, int]] = field(default_factory=list)

    def detect(self, batch: Sequence[ModelInputs]) -> list[Detections]:
        thread = threading.get_native_id()
        self.ran_on.append((thread, os.getpriority(os.PRIO_PROCESS, thread)))
        return super().detect(batch)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_the_first_detector_runs_on_the_caller_and_the_others_as_slack_work() -> None:
    """The text detector (listed first) is what a lone listing waits for: it keeps the calling
    thread's priority, while the others run lowered on the pool (models/cpu_priority.py)."""
    detectors = {name: ThreadRecordingDetector() for name in ("text", "objects", "nudity")}
    extractor = AttributeExtractor(detectors, detector_threads=2)
    caller = threading.get_native_id()
    caller_niceness = os.getpriority(os.PRIO_PROCESS, caller)
    extractor.extract(one_input())
    assert detectors["text"].ran_on == [(caller, caller_niceness)]
    for name in ("objects", "nudity"):
        ((thread, niceness),) = detectors[name].ran_on
        assert thread != caller and niceness == slack_niceness() > caller_niceness
    extractor.close()
