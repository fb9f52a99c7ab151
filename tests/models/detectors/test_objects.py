"""models.detectors.objects: the bundled NanoDet ONNX against its TensorFlow reference, the box
decoder on hand-built head outputs, then the real model on real Magento sample photos
(tests/models/data/people/SOURCES.md)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.artifacts import OBJECT_DETECTOR
from models.detectors import objects
from models.detectors.base import DetectedBox
from models.preprocess import ModelInputs
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from tests.models.detectors.devset_photos import devset_inputs

DATA = Path(__file__).resolve().parents[1] / "data"
PEOPLE = DATA / "people"
REFERENCE = DATA / f"{OBJECT_DETECTOR.name}_reference.npz"


@pytest.fixture(scope="module")
def runtime() -> OnnxRuntimeCpu:
    return OnnxRuntimeCpu(OBJECT_DETECTOR.name, OBJECT_DETECTOR.path(), intra_op_threads=2)


@pytest.fixture(scope="module")
def detector(runtime: OnnxRuntimeCpu) -> objects.ObjectDetector:
    return objects.ObjectDetector(runtime)


@cache
def photo(name: str) -> ModelInputs:
    bgr = cv2.imread(str(PEOPLE / f"magento_{name}.jpg"))
    assert bgr is not None, name
    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return ModelInputs(rgb=rgb, product_box=(0.0, 0.0, 1.0, 1.0))


def people(boxes: list[DetectedBox]) -> list[DetectedBox]:
    return [box for box in boxes if box.kind == "person"]


def centre(box: DetectedBox) -> tuple[float, float]:
    x0, y0, x1, y1 = box.box
    return (x0 + x1) / 2, (y0 + y1) / 2


# --- the converted model ----------------------------------------------------------------------


def test_bundled_file_is_the_registered_one() -> None:
    OBJECT_DETECTOR.verify()  # sha256 of models/weights/nanodet-coco-416.onnx


def test_onnx_matches_the_tensorflow_run_of_the_tfjs_graph(runtime: OnnxRuntimeCpu) -> None:
    reference = np.load(REFERENCE)
    canvas = reference["canvas"]  # 1 x 416 x 416 x 3 uint8 RGB, a letterboxed photo
    outputs = runtime.run({objects.INPUT_NAME: objects.normalise(canvas)})
    for stride in objects.STRIDES:
        for name in (f"scores_s{stride}", f"distances_s{stride}"):
            assert outputs[name].shape == reference[name].shape
            assert np.abs(outputs[name] - reference[name]).max() < 1e-4, name
    # The photo is a model seen from behind: the reference itself says "person".
    assert reference["scores_s32"][0, :, objects.PERSON_CLASS].max() > 0.8


# --- decoding ---------------------------------------------------------------------------------


def test_expected_distance_is_the_softmax_mean_of_the_bins() -> None:
    logits = np.full((1, 44), -30.0, dtype=np.float32)
    for side, bin_index in enumerate((2, 0, 10, 5)):
        logits[0, side * 11 + bin_index] = 30.0  # all mass on one bin per side
    assert np.allclose(objects.expected_distances(logits), [[2, 0, 10, 5]], atol=1e-4)
    halves = np.full((1, 44), -30.0, dtype=np.float32)
    halves[0, [3, 4]] = 0.0  # left side split evenly between 3 and 4 strides
    assert objects.expected_distances(halves)[0, 0] == pytest.approx(3.5, abs=1e-4)


def test_decode_places_a_box_around_its_cell_centre() -> None:
    grid = objects.anchors(416)
    cells = sum((416 // stride) ** 2 for stride in objects.STRIDES)
    assert grid.centres.shape == (cells, 2)
    scores = np.zeros((cells, 80), dtype=np.float32)
    distances = np.full((cells, 44), -30.0, dtype=np.float32)
    # Stride 32 cells come last; pick row 3, column 5 of its 13 x 13 grid.
    cell = 52 * 52 + 26 * 26 + 3 * 13 + 5
    scores[cell, 39] = 0.7  # bottle
    for side, bin_index in enumerate((1, 2, 1, 2)):
        distances[cell, side * 11 + bin_index] = 30.0
    min_scores = objects.ObjectDetectorSettings().class_min_scores()
    found = objects.decode(scores, distances, grid, min_scores)
    assert found.class_ids.tolist() == [39]
    cx, cy = (5 + 0.5) * 32, (3 + 0.5) * 32
    assert np.allclose(found.corners[0], [cx - 32, cy - 64, cx + 32, cy + 64], atol=1e-2)
    assert found.scores[0] == pytest.approx(0.7)


def test_person_and_object_thresholds_apply_per_class() -> None:
    settings = objects.ObjectDetectorSettings(person_min_score=0.6, weak_person_min_score=0.6,
                                              object_min_score=0.3)
    thresholds = settings.class_min_scores()
    assert thresholds[objects.PERSON_CLASS] == pytest.approx(0.6)
    assert np.allclose(thresholds[1:], 0.3)
    # Decoding keeps weak people too; keeps_person then asks their boxes for skin.
    weak = objects.ObjectDetectorSettings(person_min_score=0.6, weak_person_min_score=0.45)
    assert weak.class_min_scores()[objects.PERSON_CLASS] == pytest.approx(0.45)
    grey = np.full((10, 10, 3), 128, dtype=np.uint8)
    assert weak.keeps_person(0.6, grey, (0.0, 0.0, 1.0, 1.0))
    assert not weak.keeps_person(0.5, grey, (0.0, 0.0, 1.0, 1.0))
    assert not weak.keeps_person(0.4, np.full_like(grey, (198, 134, 96)), (0.0, 0.0, 1.0, 1.0))
    assert weak.keeps_person(0.5, np.full_like(grey, (198, 134, 96)), (0.0, 0.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        objects.ObjectDetectorSettings(person_min_score=0.0)


# --- the real model on real photos ------------------------------------------------------------


@pytest.mark.parametrize("name", ["wb04-blue_back", "mj02-green_back"])
def test_a_model_seen_from_behind_is_a_body(detector: objects.ObjectDetector, name: str) -> None:
    (found,) = detector.detect([photo(name)])
    (body,) = people(found.boxes)
    assert (body.kind, body.label) == ("person", "body")
    assert body.box[3] - body.box[1] > 0.85  # head to feet
    assert 0.35 < centre(body)[0] < 0.65


@pytest.mark.parametrize("name", ["wb01-gray_alt1", "womens-category-pants"])
def test_a_body_cut_off_by_the_frame_is_found(detector: objects.ObjectDetector, name: str) -> None:
    (found,) = detector.detect([photo(name)])
    assert len(people(found.boxes)) == 1


def test_a_hand_holding_a_gift_card_is_found_where_it_is(
    detector: objects.ObjectDetector,
) -> None:
    (found,) = detector.detect([photo("giftcard-mailed")])  # the card left, the hand right
    (hand,) = people(found.boxes)
    assert hand.box[0] > 0.3 and centre(hand)[0] > 0.55


def test_a_person_in_a_beach_scene_is_found_where_she_stands(
    detector: objects.ObjectDetector,
) -> None:
    (found,) = detector.detect([photo("womens-main")])  # a wide banner; she stands left of centre
    (body,) = people(found.boxes)
    assert 0.1 < centre(body)[0] < 0.5
    assert body.box[2] - body.box[0] < 0.45


@pytest.mark.parametrize("name", ["mg03-br-0", "mb04-black-0", "ug06-lb-0", "luma-yoga-brick"])
def test_a_packshot_has_nobody(detector: objects.ObjectDetector, name: str) -> None:
    (found,) = detector.detect([photo(name)])
    assert people(found.boxes) == []


def test_a_watch_face_is_a_clock_box_on_the_dial(detector: objects.ObjectDetector) -> None:
    (found,) = detector.detect([photo("wg09-gr-0")])
    clocks = [box for box in found.boxes if (box.kind, box.label) == ("object", "clock")]
    assert len(clocks) == 1
    x, y = centre(clocks[0])
    assert 0.3 < x < 0.7 and 0.3 < y < 0.7  # the dial sits mid-frame, the strap above and below


def test_a_batch_answers_as_its_images_do_alone(detector: objects.ObjectDetector) -> None:
    names = ["wb04-blue_back", "giftcard-mailed", "mg03-br-0", "womens-main", "wg09-gr-0"]
    batch = detector.detect([photo(name) for name in names])
    for name, together in zip(names, batch, strict=True):
        (alone,) = detector.detect([photo(name)])
        assert [(b.kind, b.label) for b in together.boxes] == [
            (b.kind, b.label) for b in alone.boxes
        ]
        for one, other in zip(together.boxes, alone.boxes, strict=True):
            assert one.score == pytest.approx(other.score, abs=1e-5)
            assert np.allclose(one.box, other.box, atol=1e-5)


def test_an_empty_batch_runs_nothing(detector: objects.ObjectDetector) -> None:
    assert detector.detect([]) == []


# --- weak readings corroborated by skin (dev-set photos, through the real preprocess stage) -----

def raw_person_scores(detector: objects.ObjectDetector, name: str) -> list[float]:
    """Person scores down to the weak floor, before the skin check."""
    loose = objects.ObjectDetector(detector.runtime, objects.ObjectDetectorSettings(
        person_min_score=0.40, weak_person_min_skin=0.0))
    return [box.score for box in people(loose.detect([devset_inputs(name)])[0].boxes)]


@pytest.mark.parametrize("name", [
    "magento/wj04-white_alternate.jpg",  # a cuff with the model's hand
    "magento/wj08-gray_alternate.jpg",  # a cuff and the model's hand over leggings
    "shops/bagisto-p29-1.jpg",  # sneakers worn, ankles showing
])
def test_a_weak_person_that_shows_skin_is_kept(detector: objects.ObjectDetector,
                                               name: str) -> None:
    scores = raw_person_scores(detector, name)
    assert scores and max(scores) < detector.settings.person_min_score  # weak, not confident
    assert people(detector.detect([devset_inputs(name)])[0].boxes)


@pytest.mark.parametrize("name", [
    "magento/ug05-gr-0.jpg",  # fitness gear
    "shops/derived-solidus-hoodie-red-white.jpg",  # a hoodie on a ghost mannequin
    "shops/spree-ror-baseball.jpg",  # a shirt laid flat
])
def test_a_weak_person_without_skin_is_a_garment_or_gear(detector: objects.ObjectDetector,
                                                         name: str) -> None:
    scores = raw_person_scores(detector, name)
    assert scores and max(scores) < detector.settings.person_min_score
    assert people(detector.detect([devset_inputs(name)])[0].boxes) == []


def test_weak_person_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="weak_person_min_skin"):
        objects.ObjectDetectorSettings(weak_person_min_skin=1.5)
    with pytest.raises(ValueError, match="weak_person_min_score"):
        objects.ObjectDetectorSettings(weak_person_min_score=0.0)


def test_normalise_gives_planar_bgr_standardised_pixels() -> None:
    canvases = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    planar = objects.normalise(canvases)
    assert planar.shape == (2, 3, 32, 32) and planar.dtype == np.float32
    assert planar.flags.c_contiguous  # what ONNX Runtime reads without a copy
    for channel, rgb_channel in enumerate((2, 1, 0)):  # B, G, R
        expected = ((canvases[..., rgb_channel].astype(np.float32) - objects.MEAN_BGR[channel])
                    / objects.STD_BGR[channel])
        np.testing.assert_array_equal(planar[:, channel], expected)
