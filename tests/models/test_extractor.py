"""The AttributeExtractor with its detectors side by side on threads: the same attributes and
boxes as one after another, on real photos (benchmarks/devset), and failures raised as before."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache

import pytest

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
