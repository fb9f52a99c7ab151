"""models.detectors.nudity and .yolo: letterbox, decode and NMS on hand-built head outputs, then
the real NudeNet model on synthetic packshots."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import pytest

from curator.contracts import vocabulary
from models.artifacts import NUDITY_DETECTOR
from models.detectors import yolo
from models.detectors.base import Detections
from models.detectors.nudity import (
    CLASS_NAMES,
    NudityDetector,
    NudityDetectorSettings,
    check_class_names,
)
from models.preprocess import ModelInputs, Preprocessor
from models.runtime.base import RuntimeInfo
from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
from tests.support import synthetic

CANVAS = 320
ANCHORS = 2100  # 40² + 20² + 10² anchors of a 320 px YOLOv8 input
NUDITY_NAMES = {"people.nudity", "people.nudity_score"}
ID = {name: index for index, name in enumerate(CLASS_NAMES)}
Anchor = tuple[str, float, tuple[float, float, float, float]]  # class, score, cx cy w h (px)


# --- helpers -----------------------------------------------------------------------------------


def head_output(anchors: Sequence[Anchor], count: int = ANCHORS) -> np.ndarray:
    """A (4 + 18) x count raw output: the given anchors first, every other score zero."""
    raw = np.zeros((4 + len(CLASS_NAMES), count), dtype=np.float32)
    raw[:4] = 1.0  # tiny boxes at the corner for the silent anchors
    for index, (label, score, box) in enumerate(anchors):
        raw[:4, index] = box
        raw[4 + ID[label], index] = score
    return raw


class ScriptedRuntime:
    """An InferenceRuntime answering a prepared output per image, recording what it was fed."""

    def __init__(self, outputs: Sequence[np.ndarray]) -> None:
        self.outputs = list(outputs)
        self.calls: list[np.ndarray] = []

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo("scripted", "test", "cpu", "fp32")

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensor = inputs["images"]
        self.calls.append(tensor)
        return {"output0": np.stack(self.outputs[: tensor.shape[0]])}


def scripted(*outputs: np.ndarray, **settings: Any) -> tuple[NudityDetector, ScriptedRuntime]:
    runtime = ScriptedRuntime(outputs)
    detector = NudityDetector(runtime, NudityDetectorSettings(**settings), class_names=CLASS_NAMES)
    return detector, runtime


def frame(width: int = 320, height: int = 320) -> ModelInputs:
    rgb = np.full((height, width, 3), 255, dtype=np.uint8)
    return ModelInputs(rgb=rgb, product_box=(0.0, 0.0, 1.0, 1.0))


def assert_same(alone: Detections, batched: Detections) -> None:
    assert alone.attributes.keys() == batched.attributes.keys()
    for name, value in alone.attributes.items():
        assert batched.attributes[name] == pytest.approx(value, abs=1e-4), name
    assert [b.label for b in alone.boxes] == [b.label for b in batched.boxes]
    for one, other in zip(alone.boxes, batched.boxes, strict=True):
        assert other.score == pytest.approx(one.score, abs=1e-4)
        assert other.box == pytest.approx(one.box, abs=1e-4)


# --- letterbox ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (640, 640, yolo.Letterbox(CANVAS, 0, 0, 320, 320)),
        (360, 640, yolo.Letterbox(CANVAS, 0, 70, 320, 180)),
        (640, 427, yolo.Letterbox(CANVAS, 53, 0, 214, 320)),  # odd padding: extra pixel after
        (100, 50, yolo.Letterbox(CANVAS, 80, 0, 160, 320)),  # small frames are scaled up
        (640, 1, yolo.Letterbox(CANVAS, 159, 0, 1, 320)),  # never narrower than a pixel
    ],
    ids=["square", "landscape", "portrait-odd-pad", "upscaled", "sliver"],
)
def test_letterbox_fits_and_centres(height: int, width: int, expected: yolo.Letterbox) -> None:
    assert yolo.Letterbox.fit(height, width, CANVAS) == expected


def test_letterbox_batch_places_each_frame_on_its_own_grey_canvas() -> None:
    red = np.zeros((360, 640, 3), dtype=np.uint8)
    red[..., 0] = 255
    tensor, placements = yolo.letterbox_batch([red, frame(100, 200).rgb], CANVAS)
    assert tensor.shape == (2, 3, CANVAS, CANVAS) and tensor.dtype == np.float32
    assert tensor.flags["C_CONTIGUOUS"]
    grey = yolo.PAD_VALUE / 255
    first = placements[0]
    np.testing.assert_allclose(tensor[0, :, : first.top], grey, atol=1e-7)
    np.testing.assert_allclose(tensor[0, :, first.top + first.height :], grey, atol=1e-7)
    content = tensor[0, :, first.top : first.top + first.height]
    np.testing.assert_allclose(content[0], 1.0)  # red channel first: RGB order kept
    np.testing.assert_allclose(content[1:], 0.0)
    second = placements[1]
    assert (second.left, second.width) == (80, 160)
    np.testing.assert_allclose(tensor[1, :, :, : second.left], grey, atol=1e-7)
    np.testing.assert_allclose(tensor[1, :, :, second.left : second.left + second.width], 1.0)


@pytest.mark.parametrize("shape", [(360, 640), (640, 427), (77, 640), (320, 320)],
                         ids=["landscape", "portrait", "banner", "square"])
def test_letterbox_undo_is_exact(shape: tuple[int, int]) -> None:
    placement = yolo.Letterbox.fit(*shape, CANVAS)
    boxes = np.random.default_rng(0).uniform(0, 1, size=(50, 4))
    boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]),
                            np.maximum(boxes[:, :2], boxes[:, 2:])], axis=1)
    back = placement.to_frame_units(placement.from_frame_units(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-12)


def test_boxes_off_the_frame_are_clipped_to_it() -> None:
    placement = yolo.Letterbox.fit(360, 640, CANVAS)  # 70 px of padding above and below
    corners = np.array([[-10.0, 0.0, 330.0, 320.0]])
    np.testing.assert_allclose(placement.to_frame_units(corners), [[0.0, 0.0, 1.0, 1.0]])


# --- decode and NMS ----------------------------------------------------------------------------


def test_decode_turns_centres_into_corners_and_applies_class_thresholds() -> None:
    raw = head_output([
        ("FACE_FEMALE", 0.9, (100, 50, 20, 30)),
        ("FACE_MALE", 0.3, (200, 200, 10, 10)),  # below its class threshold
        ("BELLY_EXPOSED", 0.45, (160, 160, 40, 20)),
    ])
    thresholds = np.full(len(CLASS_NAMES), 0.4, dtype=np.float32)
    candidates = yolo.decode(raw, thresholds)
    found = sorted(zip(candidates.class_ids.tolist(), candidates.scores.tolist(),
                       candidates.corners.tolist(), strict=True))
    assert [CLASS_NAMES[class_id] for class_id, _, _ in found] == ["FACE_FEMALE", "BELLY_EXPOSED"]
    assert found[0][2] == pytest.approx([90, 35, 110, 65])
    assert found[1][2] == pytest.approx([140, 150, 180, 170])
    assert found[1][1] == pytest.approx(0.45)


def test_decode_is_multi_label() -> None:
    """One anchor read as covered (stronger) and exposed: both survive decoding."""
    raw = head_output([("FEMALE_BREAST_COVERED", 0.8, (100, 100, 40, 40))])
    raw[4 + ID["FEMALE_BREAST_EXPOSED"], 0] = 0.6
    candidates = yolo.decode(raw, np.full(len(CLASS_NAMES), 0.5, dtype=np.float32))
    assert sorted(CLASS_NAMES[i] for i in candidates.class_ids) == [
        "FEMALE_BREAST_COVERED", "FEMALE_BREAST_EXPOSED"]


def test_decode_rejects_a_head_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="expected"):
        yolo.decode(np.zeros((20, 10), np.float32), np.zeros(18, np.float32))


def test_box_iou_against_hand_computed_values() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 2, 8]], float)
    np.testing.assert_allclose(yolo.box_iou(box, others), [1.0, 50 / 150, 0.0, 0.0])


def test_nms_suppresses_overlapping_duplicates_within_a_group_only() -> None:
    corners = np.array([
        [0, 0, 10, 10],  # best
        [1, 0, 11, 10],  # duplicate of 0 (IoU 0.82): suppressed
        [20, 20, 30, 30],  # apart: kept
        [0, 0, 10, 10],  # same place, other group: kept
        [0, 5, 10, 15],  # IoU 1/3 with 0: kept
    ], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.5, 0.7, 0.6], dtype=np.float32)
    groups = np.array([0, 0, 0, 1, 0])
    keep = yolo.nms(corners, scores, groups, iou_threshold=0.45, max_keep=10)
    assert keep.tolist() == [0, 3, 4, 2]
    assert yolo.nms(corners, scores, groups, 0.45, max_keep=2).tolist() == [0, 3]
    assert yolo.nms(corners[:0], scores[:0], groups[:0], 0.45, 10).tolist() == []


# --- the detector on scripted head outputs -----------------------------------------------------


@pytest.mark.parametrize("shape", [(360, 640), (640, 427), (320, 320)],
                         ids=["landscape", "portrait", "square"])
def test_detector_reports_boxes_in_frame_units(shape: tuple[int, int]) -> None:
    truth = np.array([0.25, 0.1, 0.5, 0.4])
    placement = yolo.Letterbox.fit(*shape, CANVAS)
    x0, y0, x1, y1 = placement.from_frame_units(truth)
    raw = head_output([("BUTTOCKS_EXPOSED", 0.8,
                        ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))])
    detector, _ = scripted(raw)
    (result,) = detector.detect([frame(shape[1], shape[0])])
    (box,) = result.boxes
    assert (box.kind, box.label, box.score) == ("nudity", "BUTTOCKS_EXPOSED", pytest.approx(0.8))
    assert box.box == pytest.approx(tuple(truth), abs=1e-5)


@pytest.mark.parametrize(
    ("anchors", "expected"),
    [
        ([], {"people.nudity": False, "people.nudity_score": 0.0}),
        ([("FEMALE_BREAST_EXPOSED", 0.55, (100, 100, 30, 30)),
          ("BUTTOCKS_EXPOSED", 0.8, (200, 200, 60, 40))],
         {"people.nudity": True, "people.nudity_score": 0.8}),
        ([("MALE_BREAST_EXPOSED", 0.9, (100, 100, 30, 30))],
         {"people.nudity": False, "people.nudity_score": 0.0}),
        ([("ANUS_EXPOSED", 0.45, (100, 100, 30, 30))],  # under the explicit bar
         {"people.nudity": False, "people.nudity_score": 0.0}),
        ([("BUTTOCKS_COVERED", 0.95, (100, 100, 30, 30)),
          ("FACE_FEMALE", 0.9, (100, 40, 30, 30))],  # a dressed model
         {"people.nudity": False, "people.nudity_score": 0.0}),
    ],
    ids=["nothing", "explicit", "male-chest-is-not-nudity", "weak-explicit", "dressed"],
)
def test_attributes_follow_the_class_families(
    anchors: list[Anchor], expected: dict[str, vocabulary.AttributeValue]
) -> None:
    detector, _ = scripted(head_output(anchors))
    (result,) = detector.detect([frame()])
    assert set(result.attributes) == NUDITY_NAMES
    for name, value in result.attributes.items():
        vocabulary.check_value(name, value)
    for name, value in expected.items():
        assert result.attributes[name] == pytest.approx(value), name


def test_empty_batch_runs_no_model() -> None:
    detector, runtime = scripted()
    assert detector.detect([]) == []
    assert runtime.calls == []


def test_one_forward_pass_per_batch() -> None:
    detector, runtime = scripted(*[head_output([]) for _ in range(3)])
    results = detector.detect([frame(640, 360), frame(100, 100), frame(427, 640)])
    assert len(results) == 3 and len(runtime.calls) == 1
    assert runtime.calls[0].shape == (3, 3, CANVAS, CANVAS)


def test_an_output_of_the_wrong_shape_is_refused() -> None:
    detector, _ = scripted(np.zeros((20, ANCHORS), np.float32))
    with pytest.raises(yolo.ModelMetadataError, match="expected"):
        detector.detect([frame()])


# --- class table -------------------------------------------------------------------------------


def test_class_table_matches_the_model_metadata() -> None:
    assert yolo.read_class_names(NUDITY_DETECTOR.path()) == CLASS_NAMES


@pytest.mark.parametrize(
    "names",
    [
        (CLASS_NAMES[1], CLASS_NAMES[0], *CLASS_NAMES[2:]),
        CLASS_NAMES[:-1],
        (*CLASS_NAMES, "HAND"),
    ],
    ids=["swapped", "missing", "extra"],
)
def test_a_different_class_table_is_refused(names: tuple[str, ...]) -> None:
    with pytest.raises(yolo.ModelMetadataError, match="class table"):
        check_class_names(names)
    with pytest.raises(yolo.ModelMetadataError):
        NudityDetector(ScriptedRuntime([]), class_names=names)


@pytest.mark.parametrize(
    "settings",
    [{"explicit_min_score": 0.0}, {"explicit_min_score": 1.5}, {"nms_iou": -0.1},
     {"max_boxes_per_image": 0}, {"input_size_px": 300}],
    ids=["zero-threshold", "above-one", "negative-iou", "no-boxes", "not-stride-multiple"],
)
def test_unsafe_settings_fail_fast(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        NudityDetectorSettings(**settings)


# --- the real model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> NudityDetector:
    runtime = OnnxRuntimeCpu(NUDITY_DETECTOR.name, NUDITY_DETECTOR.path(), intra_op_threads=2)
    return NudityDetector(runtime)


@cache
def model_inputs(source: str) -> ModelInputs:
    data = synthetic.to_jpeg_bytes(PACKSHOTS[source]())
    return Preprocessor().run(data, image_id=source).model_inputs


PACKSHOTS = {
    "box-on-white": lambda: synthetic.render_product(size=(800, 800)),
    "bottle-wide": lambda: synthetic.render_product(size=(1000, 400), shape="bottle"),
    "disc-tall": lambda: synthetic.render_product(size=(300, 900), shape="disc", fill=0.6),
    "studio": lambda: synthetic.render_product(size=(640, 480), background="studio"),
    "busy": lambda: synthetic.render_product(size=(700, 700), background="busy", seed=3),
    "two-items": lambda: synthetic.two_items(size=(900, 600)),
}


@pytest.mark.parametrize("scene", sorted(PACKSHOTS))
def test_plain_packshots_show_nobody(detector: NudityDetector, scene: str) -> None:
    (result,) = detector.detect([model_inputs(scene)])
    assert result.attributes == {"people.nudity": False, "people.nudity_score": 0.0}
    assert result.boxes == []


def test_an_image_gets_the_same_answer_alone_and_in_any_batch(detector: NudityDetector) -> None:
    sources = sorted(PACKSHOTS)
    inputs = [model_inputs(source) for source in sources]
    alone = [detector.detect([one])[0] for one in inputs]
    together = detector.detect(inputs)
    shuffled = detector.detect(inputs[::-1])[::-1]
    for single, batched, reordered in zip(alone, together, shuffled, strict=True):
        assert_same(single, batched)
        assert_same(single, reordered)
