"""models.detectors.text.TextDetector: batching, letterboxing, attributes; then the real model
on generated scenes, every image through JPEG bytes -> Preprocessor -> detect."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pytest

from curator.contracts import vocabulary
from models.artifacts import TEXT_DETECTOR, ArtifactError
from models.detectors.base import Detections
from models.detectors.text import (
    TextDetector,
    canvas_shape,
    covered_fraction,
    letterbox,
    normalise,
)
from models.detectors.text_settings import TextDetectorSettings
from models.preprocess import ModelInputs, Preprocessor
from models.runtime.base import RuntimeInfo
from tests.models.detectors import text_scenes
from tests.support import synthetic

TEXT_NAMES = {name for name in vocabulary.VOCABULARY if name.startswith("text.")}
PREPROCESSOR = Preprocessor()
BATCH = 8  # scenes go through the detector in batches of this many


# --- without the model ---------------------------------------------------------------------------


class DarkIsText:
    """A stand-in runtime: text probability 0.95 wherever the canvas pixel is near black."""

    info = RuntimeInfo("fake", "numpy", "cpu", "fp32")

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = inputs["x"]
        self.shapes.append(batch.shape)
        dark = (batch.max(axis=1, keepdims=True) < -0.8).astype(np.float32)
        return {"maps": dark * 0.95}


def _inputs(rgb: np.ndarray, product_box: tuple[float, float, float, float] = (0, 0, 1, 1)
            ) -> ModelInputs:
    return ModelInputs(rgb=np.ascontiguousarray(rgb), product_box=product_box)


def _page(height: int, width: int, bar: tuple[int, int, int, int]) -> np.ndarray:
    """White page with one black bar (x0, y0, x1, y1 in px), a stand-in for a line of text."""
    rgb = np.full((height, width, 3), 255, dtype=np.uint8)
    x0, y0, x1, y1 = bar
    rgb[y0:y1, x0:x1] = 0
    return rgb


def test_letterbox_keeps_aspect_and_pads_with_the_edge_colour() -> None:
    rgb = np.full((200, 400, 3), (10, 200, 30), dtype=np.uint8)
    canvas = np.zeros((640, 640, 3), dtype=np.uint8)
    placed = letterbox(rgb, canvas)
    assert (placed.scale, placed.height, placed.width) == (1.6, 320, 640)
    assert np.all(canvas == (10, 200, 30))  # image and padding alike: no edge at the seam


def test_normalise_is_the_model_normalisation() -> None:
    canvases = np.array([[[[0, 255, 51]]]], dtype=np.uint8)  # N=1, 1 x 1, RGB
    batch = normalise(canvases)
    assert batch.shape == (1, 3, 1, 1)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], [-1.0, 1.0, 51 / 127.5 - 1], atol=1e-6)


def test_a_fit_canvas_is_the_image_rounded_up_to_the_stride() -> None:
    fit, square = TextDetectorSettings(), TextDetectorSettings(fit_canvas=False)
    assert canvas_shape(200, 400, fit) == (320, 640)  # 320 x 640 placed: no padding at all
    assert canvas_shape(500, 250, fit) == (640, 320)
    assert canvas_shape(454, 640, fit) == (480, 640)  # 454 rows: padded to the next 32
    assert canvas_shape(100, 100, fit) == (640, 640)  # small ones are drawn 640 long too
    assert canvas_shape(4, 640, fit) == (32, 640)
    assert canvas_shape(200, 400, square) == (640, 640)
    rgb = np.full((454, 640, 3), 7, dtype=np.uint8)
    canvas = np.zeros((*canvas_shape(454, 640, fit), 3), dtype=np.uint8)
    placed = letterbox(rgb, canvas)
    assert (placed.scale, placed.height, placed.width) == (1.0, 454, 640)
    assert np.all(canvas == 7)


@pytest.mark.parametrize(("fit_canvas", "passes"), [
    (True, [(1, 3, 320, 640), (1, 3, 640, 320)]),  # one forward pass per canvas shape
    (False, [(2, 3, 640, 640)]),
])
def test_forward_passes_by_canvas_and_boxes_in_frame_units(
    fit_canvas: bool, passes: list[tuple[int, ...]]
) -> None:
    runtime = DarkIsText()
    detector = TextDetector(runtime, TextDetectorSettings(fit_canvas=fit_canvas))
    wide = _page(300, 600, (100, 60, 300, 75))  # letterboxed at the top, scale 640/600
    tall = _page(500, 250, (50, 400, 200, 410))  # letterboxed at the left, scale 640/500
    results = detector.detect([_inputs(wide), _inputs(tall)])
    assert runtime.shapes == passes
    for result, (height, width, (x0, y0, x1, y1)) in zip(
        results, [(300, 600, (100, 60, 300, 75)), (500, 250, (50, 400, 200, 410))], strict=True
    ):
        (box,) = result.boxes
        # The box contains the bar and exceeds it by about DB's unclip margin, no more.
        bx0, by0, bx1, by1 = box.box
        assert bx0 * width <= x0 + 1 and bx1 * width >= x1 - 1
        assert by0 * height <= y0 + 1 and by1 * height >= y1 - 1
        assert (bx1 - bx0) * width < (x1 - x0) + 30
        assert result.attributes["text.box_count"] == 1
        assert result.attributes["text.overlay"] is True  # a bar on a white page: background


def test_images_of_one_canvas_shape_share_a_pass_and_keep_their_order() -> None:
    runtime = DarkIsText()
    pages = [_page(300, 600, (100, 60, 300, 75)), _page(500, 250, (50, 400, 200, 410)),
             _page(150, 300, (10, 10, 200, 30))]
    results = TextDetector(runtime).detect([_inputs(page) for page in pages])
    assert runtime.shapes == [(2, 3, 320, 640), (1, 3, 640, 320)]
    alone = [TextDetector(DarkIsText()).detect([_inputs(page)])[0] for page in pages]
    assert [r.boxes for r in results] == [r.boxes for r in alone]


def test_an_empty_batch_runs_nothing() -> None:
    runtime = DarkIsText()
    assert TextDetector(runtime).detect([]) == []
    assert runtime.shapes == []


def test_covered_fraction_counts_overlaps_once() -> None:
    rects = [((50.0, 50.0), (40.0, 20.0), 0.0), ((50.0, 50.0), (40.0, 20.0), 0.0)]
    assert covered_fraction(rects, 100, 100) == pytest.approx(0.08, abs=0.01)
    assert covered_fraction([], 100, 100) == 0.0


# --- with the model ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["fp32", "int8", "bf16"])
def detector(request: pytest.FixtureRequest) -> TextDetector:
    """The FP32 model, its INT8 sibling and the FP32 model in OpenVINO bf16 (models.runtime.select
    picks one per host): every test with the model holds for all three. (On a CPU without
    bfloat16, OpenVINO computes the bf16 case in f32.)"""
    from models.runtime.cpu_features import cpu_features
    from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
    from models.runtime.openvino_cpu import OpenVinoCpu
    from models.runtime.select import choose_cpu_model, openvino_available

    try:
        choice = choose_cpu_model(TEXT_DETECTOR, request.param, cpu_features(),
                                  openvino_available())
    except ArtifactError as error:
        pytest.skip(str(error))
    if choice.precision != request.param:
        pytest.skip(f"no {request.param} text detector: {choice.reason}")
    if choice.runtime == "openvino":
        return TextDetector(OpenVinoCpu(TEXT_DETECTOR.name, choice.path, precision="bf16"))
    return TextDetector(OnnxRuntimeCpu(TEXT_DETECTOR.name, choice.path,
                                       precision=choice.precision))


@cache
def _model_inputs(image_key: str) -> ModelInputs:
    return PREPROCESSOR.run(synthetic.to_jpeg_bytes(_SCENES[image_key].image)).model_inputs


_SCENES: dict[str, text_scenes.TextScene] = {}


def _scenes(kind: str) -> list[text_scenes.TextScene]:
    if kind == "overlay":
        scenes = [text_scenes.overlay_scene(i) for i in range(36)]
    elif kind == "on_product":
        scenes = [text_scenes.on_product_scene(i) for i in range(24)]
    else:
        scenes = [text_scenes.TextScene(name, make(), ()) for name, make in
                  text_scenes.PLAIN.items()]
    _SCENES.update({scene.name: scene for scene in scenes})
    return scenes


_RESULTS: dict[tuple[str, str], list[Detections]] = {}  # (precision, kind) -> results


def _detect_all(detector: TextDetector, kind: str) -> list[tuple[text_scenes.TextScene,
                                                                 Detections]]:
    """Each scene set detected once per session, in batches of BATCH."""
    scenes = _scenes(kind)
    key = (detector.runtime_info.precision, kind)
    if key not in _RESULTS:
        inputs = [_model_inputs(scene.name) for scene in scenes]
        results: list[Detections] = []
        for start in range(0, len(inputs), BATCH):
            results.extend(detector.detect(inputs[start : start + BATCH]))
        _RESULTS[key] = results
    return list(zip(scenes, _RESULTS[key], strict=True))


def _ink_covered(ink: np.ndarray, result: Detections, label: str | None = None) -> float:
    """Share of the stamp's ink pixels inside the detected boxes (of `label`, if given)."""
    height, width = ink.shape
    covered = np.zeros_like(ink)
    for box in result.boxes:
        if label is not None and box.label != label:
            continue
        x0, y0, x1, y1 = box.box
        covered[int(y0 * height) : int(np.ceil(y1 * height)),
                int(x0 * width) : int(np.ceil(x1 * width))] = True
    return float(np.count_nonzero(covered & ink)) / max(1, int(np.count_nonzero(ink)))


def _rates(pairs: Sequence[tuple[text_scenes.TextScene, Detections]], label: str
           ) -> tuple[float, float]:
    """(found: share of stamps at least half covered by boxes, labelled: ... by `label` boxes)."""
    found = labelled = total = 0
    for scene, result in pairs:
        for stamp in scene.stamps:
            total += 1
            found += _ink_covered(stamp.ink, result) >= 0.5
            labelled += _ink_covered(stamp.ink, result, label) >= 0.5
    return found / total, labelled / total


def test_attributes_are_exactly_the_vocabulary(detector: TextDetector) -> None:
    for _, result in _detect_all(detector, "overlay")[:4] + _detect_all(detector, "plain")[:2]:
        assert set(result.attributes) == TEXT_NAMES
        for name, value in result.attributes.items():
            vocabulary.check_value(name, value)
        for box in result.boxes:
            assert box.kind == "text" and box.label in {"overlay", "on_product"}
            x0, y0, x1, y1 = box.box
            assert 0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0


def test_added_text_is_found_and_called_overlay(detector: TextDetector) -> None:
    pairs = _detect_all(detector, "overlay")
    stamps = sum(len(scene.stamps) for scene, _ in pairs)
    recall, overlay = _rates(pairs, "overlay")
    flagged = np.mean([result.attributes["text.overlay"] for _, result in pairs])
    print(f"overlay scenes: {len(pairs)} images, {stamps} texts; recall {recall:.3f}, "
          f"called overlay {overlay:.3f}, images flagged {flagged:.3f}")
    assert stamps >= 30
    assert recall >= 0.9
    assert overlay >= 0.9
    assert flagged >= 0.9
    for _, result in pairs:
        if result.attributes["text.overlay"]:
            overlay_area = float(result.attributes["text.overlay_area_fraction"] or 0.0)
            assert 0.0 < overlay_area <= float(result.attributes["text.area_fraction"] or 0.0)


def test_plain_products_have_no_overlay(detector: TextDetector) -> None:
    for scene, result in _detect_all(detector, "plain"):
        assert result.attributes["text.overlay"] is False, scene.name
        assert result.attributes["text.overlay_area_fraction"] == 0.0


def test_print_on_the_product_is_mostly_not_overlay(detector: TextDetector) -> None:
    pairs = _detect_all(detector, "on_product")
    recall, on_product = _rates(pairs, "on_product")
    not_flagged = np.mean([not result.attributes["text.overlay"] for _, result in pairs])
    print(f"print on product: {len(pairs)} images; recall {recall:.3f}, "
          f"called on_product {on_product:.3f}, images not flagged overlay {not_flagged:.3f}")
    assert not_flagged >= 0.7


def test_an_image_gets_the_same_answer_alone_and_in_any_batch(detector: TextDetector) -> None:
    names = ["overlay-0", "overlay-1", "overlay-2", "overlay-3", "on-product-1", "on-product-2"]
    _scenes("overlay")
    _scenes("on_product")
    inputs = [_model_inputs(name) for name in names]
    assert len({item.rgb.shape for item in inputs}) >= 3  # sizes differ within the batch
    together = detector.detect(inputs)
    reversed_batch = detector.detect(inputs[::-1])[::-1]
    for item, joint, backwards in zip(inputs, together, reversed_batch, strict=True):
        (alone,) = detector.detect([item])
        for other in (joint, backwards):
            assert len(other.boxes) == len(alone.boxes)
            for name, value in alone.attributes.items():
                if isinstance(value, float):
                    assert other.attributes[name] == pytest.approx(value, abs=1e-3)
                else:
                    assert other.attributes[name] == value
            for mine, theirs in zip(alone.boxes, other.boxes, strict=True):
                assert mine.label == theirs.label
                assert theirs.box == pytest.approx(mine.box, abs=2e-3)
                assert theirs.score == pytest.approx(mine.score, abs=1e-3)


def test_a_brand_name_in_the_corner_of_a_framed_packshot_is_overlay(
        detector: TextDetector) -> None:
    """A dev-set photo: a mug on white inside a thin orange frame, with "curio&co" added in the
    bottom-right corner. Once the frame is found on all four sides, the name lies on the
    backdrop, not on the product."""
    from tests.models.detectors.devset_photos import devset_inputs

    (found,) = detector.detect([devset_inputs("extra/boutique-mug-brand-outline.jpg")])
    assert found.attributes["text.overlay"] is True
    corner = [box for box in found.boxes if box.box[0] > 0.6 and box.box[1] > 0.85]
    assert [box.label for box in corner] == ["overlay"]


# Non-square dev-set photos with added text: a badge, a price, a sale banner.
_NON_SQUARE_OVERLAYS = ["extra/boutique-folding-camera-promo.jpg",
                        "magento/mb05-black-0__promo.jpg", "magento/mg02-bk-0__promo.jpg",
                        "magento/mg03-br-0__sale.jpg"]


def test_the_fitted_canvas_answers_as_the_square_one_on_real_photos() -> None:
    """The fitted canvas only leaves out padding: on non-square photos with overlay text it
    finds the square canvas's boxes and gives the same verdict, for less compute (the
    benchmark measures both on every held-out photo: benchmarks/text_detector.py)."""
    from benchmarks.text_detector import recall_against
    from models.runtime.onnxruntime_cpu import OnnxRuntimeCpu
    from tests.models.detectors.devset_photos import devset_inputs

    runtime = OnnxRuntimeCpu("fp32", TEXT_DETECTOR.path(), intra_op_threads=2)
    square = TextDetector(runtime, TextDetectorSettings(fit_canvas=False))
    fitted = TextDetector(runtime, TextDetectorSettings(fit_canvas=True))
    photos = [devset_inputs(name) for name in _NON_SQUARE_OVERLAYS]
    assert all(max(p.rgb.shape[:2]) - min(p.rgb.shape[:2]) >= 96 for p in photos)
    squares, fits = square.detect(photos), fitted.detect(photos)
    assert recall_against(squares, fits) == recall_against(fits, squares) == 1.0
    assert [r.attributes["text.overlay"] for r in fits] == [True] * len(photos)
