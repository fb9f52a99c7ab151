"""The AttributeExtractor stage as a plain class: every enabled detector over one batch.

Detectors are switched on by name (`EXTRACTOR_MODELS`); a detector that is off simply produces
no attributes, and the rules over them report "not evaluated" instead of guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from curator.contracts.registry import Registry
from curator.contracts.vocabulary import AttributeValue
from models.cpu_priority import run_as_slack_work
from models.detectors.base import DetectedBox, Detections, Detector
from models.detectors.items import judge_items
from models.detectors.people import judge_people
from models.preprocess import ModelInputs
from models.runtime.base import RuntimeInfo
from models.runtime.request import RuntimeRequest

logger = logging.getLogger(__name__)

# The frame a warm-up runs on: model inputs are at most this long a side (models/preprocess.py),
# and every detector letterboxes into a canvas of its own, so their tensors have their working
# shapes whatever the picture. Noise, not a blank frame: the post-processing of a blank one
# allocates next to nothing.
_WARM_UP_SIDE = 640


# Each runtime's engine shape comes from the artifact's registered profile
# (models/runtime/profiles.py), the same one `curator models build-engines` uses, so prebuilt
# engines are found.
def _text_detector(request: RuntimeRequest) -> Detector:
    from models.artifacts import TEXT_DETECTOR
    from models.detectors.text import TextDetector

    return TextDetector(request.create(TEXT_DETECTOR))


def _nudity_detector(request: RuntimeRequest) -> Detector:
    from models.artifacts import NUDITY_DETECTOR
    from models.detectors.nudity import NudityDetector

    return NudityDetector(request.create(NUDITY_DETECTOR))


def _object_detector(request: RuntimeRequest) -> Detector:
    from models.detectors import objects

    return objects.create(request)


def _face_hand_detector(request: RuntimeRequest) -> Detector:
    from models.detectors import blaze

    return blaze.create(request)


# name -> factory(runtime request). One place lists what the extractor can run.
EXTRACTOR_MODELS: Registry[Callable[[RuntimeRequest], Detector]] = Registry("extractor model")
EXTRACTOR_MODELS.add("text", _text_detector)
EXTRACTOR_MODELS.add("objects", _object_detector)  # COCO objects and bodies
EXTRACTOR_MODELS.add("faces_hands", _face_hand_detector)
EXTRACTOR_MODELS.add("nudity", _nudity_detector)
# The detectors that draw person boxes: with none of them on, people.* stay unmeasured (their
# rules report "not evaluated") rather than read as "nobody".
PERSON_DETECTORS: frozenset[str] = frozenset({"objects", "faces_hands"})


def check_model_names(names: Sequence[str]) -> None:
    unknown = sorted(set(names) - set(EXTRACTOR_MODELS.names()))
    if unknown:
        raise ValueError(
            f"unknown extractor models {unknown}; known: {EXTRACTOR_MODELS.names()}")


@dataclass(frozen=True)
class Extraction:
    attributes: dict[str, AttributeValue]
    boxes: list[DetectedBox]


class AttributeExtractor:
    """`detector_threads` > 1 runs the detectors of one batch side by side on that many threads:
    ONNX Runtime releases the GIL while a session runs, so a lone request uses more than one
    core when the host is idle. Under load the replicas compete for the cores anyway, and the
    work per image stays the same. The results do not depend on it.

    The first detector (the slowest: list it first) runs on the calling thread at its own
    priority; the others run on the pool's threads as slack work (models/cpu_priority.py), so
    on a contended core the detector a lone listing waits for goes first."""

    def __init__(self, detectors: Mapping[str, Detector], detector_threads: int = 1) -> None:
        if detector_threads < 1:
            raise ValueError(f"detector_threads must be at least 1, not {detector_threads}")
        self.detectors = dict(detectors)
        self.detector_threads = min(detector_threads, max(1, len(self.detectors)))
        # The calling thread is one of the threads: it runs the first detector itself.
        self._pool = (
            ThreadPoolExecutor(self.detector_threads - 1, thread_name_prefix="detector",
                               initializer=run_as_slack_work)
            if self.detector_threads > 1 else None
        )

    @classmethod
    def create(
        cls, models: Sequence[str], request: RuntimeRequest, detector_threads: int = 1
    ) -> AttributeExtractor:
        check_model_names(models)
        detectors = {name: EXTRACTOR_MODELS.get(name)(request) for name in models}
        for name, detector in detectors.items():
            info = detector.runtime_info
            logger.info("extractor model %s: %s on %s (%s)", name, info.runtime, info.device,
                        info.precision)
        return cls(detectors, detector_threads)

    @property
    def runtime_info(self) -> dict[str, RuntimeInfo]:
        return {name: detector.runtime_info for name, detector in self.detectors.items()}

    def extract(self, batch: Sequence[ModelInputs]) -> list[Extraction]:
        """Each detector runs once over the whole batch; results are merged per image."""
        merged = [Extraction(attributes={}, boxes=[]) for _ in batch]
        if not batch:
            return merged
        # Merged in the detectors' order whichever finished first, so attributes and boxes come
        # out the same with or without threads.
        for detections in self._detect_all(batch):
            for extraction, found in zip(merged, detections, strict=True):
                extraction.attributes.update(found.attributes)
                extraction.boxes.extend(found.boxes)
        # Items and people are judged once every detector has spoken: text boxes tell artwork
        # from items, object boxes tell touching views apart and screens from people.
        judges_people = not PERSON_DETECTORS.isdisjoint(self.detectors)
        for inputs, extraction in zip(batch, merged, strict=True):
            extraction.attributes.update(judge_items(inputs, extraction.boxes))
            if judges_people:
                extraction.attributes.update(judge_people(extraction.boxes, inputs.items))
        return merged

    def warm_up(self, batch_size: int, rounds: int = 2) -> None:
        """Run every detector over `batch_size` noise frames, `rounds` times.

        ONNX Runtime's CPU arena (and a TensorRT context's scratch) grows to what the largest
        batch needs the first times that batch size runs, and then holds. Warmed at the largest
        batch the replica may form, it reaches that size before it takes traffic rather than
        stepping up under load (issue 13's soak: 674 -> 807 MiB mid-run when a bigger batch first
        formed). Two rounds: measured on the 2-core Xeon at batch 4, RSS was 405 MiB built,
        681 after one round, 917 after two, and 976 after 40 real batches of 1-4 (post-processing
        of real detections), where it stayed.
        """
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (_WARM_UP_SIDE, _WARM_UP_SIDE, 3), dtype=np.uint8)
        batch = [ModelInputs(rgb=frame, product_box=(0.0, 0.0, 1.0, 1.0))] * batch_size
        for _ in range(rounds):
            self.extract(batch)

    def _detect_all(self, batch: Sequence[ModelInputs]) -> list[list[Detections]]:
        """Every detector's detections of the batch, in the detectors' order."""
        if self._pool is None:
            return [detector.detect(batch) for detector in self.detectors.values()]
        first, *others = self.detectors.values()
        futures = [self._pool.submit(detector.detect, batch) for detector in others]
        # All of them finish before anything is raised: a failed detector must not leave the
        # others running into the next batch. The first failure in the detectors' order is the
        # one raised, as when they run one after another.
        try:
            first_found = first.detect(batch)
        finally:
            wait(futures)
        return [first_found, *(future.result() for future in futures)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
