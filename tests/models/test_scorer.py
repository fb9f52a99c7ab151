"""QualityScorer: the product region, BRISQUE through the preprocessor's outputs, scorer cards."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

from curator.contracts.vocabulary import AttributeValue
from models import scorer_cards
from models.preprocess import ModelInputs, Preprocessor
from models.quality import ScorerCardV0
from models.scorer import (
    MIN_MARGIN_PX,
    MIN_REGION_SIDE_PX,
    UNMEASURABLE_POINTS,
    QualityScorer,
    product_region,
)
from tests.support import synthetic

CPU = torch.device("cpu")
Item = tuple[ModelInputs, dict[str, AttributeValue]]


@pytest.fixture(scope="module")
def scorer() -> QualityScorer:
    return QualityScorer("card-v1", device=CPU)


def preprocessed(image: Image.Image) -> Item:
    result = Preprocessor().run(synthetic.to_jpeg_bytes(image, quality=95))
    return result.model_inputs, result.attributes


@cache
def _scene(seed: int = 0, shape: synthetic.Shape = "box", size: int = 520) -> Image.Image:
    return synthetic.render_product(size=(size, size), fill=0.8, shape=shape, seed=seed)


def _noisy(image: Image.Image, sigma: float, seed: int = 5) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    pixels += np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.uint8(np.clip(np.rint(pixels), 0, 255)), "RGB")


# --- the product region ------------------------------------------------------------------------


def _inputs(box: tuple[float, float, float, float]) -> ModelInputs:
    return ModelInputs(rgb=np.zeros((400, 600, 3), np.uint8), product_box=box)


def test_region_is_the_box_with_a_margin() -> None:
    region = product_region(_inputs((0.25, 0.25, 0.75, 0.75)))  # 300 x 200 px box in 600 x 400
    margin = 0.05 * 300
    assert region.shape[:2] == (200 + 2 * margin, 300 + 2 * margin)


def test_region_is_clipped_to_the_frame() -> None:
    region = product_region(_inputs((0.0, 0.5, 1.0, 1.0)))
    assert region.shape[:2] == (200 + 30, 600)


def test_small_boxes_grow_to_the_minimum_side() -> None:
    region = product_region(_inputs((0.5, 0.5, 0.51, 0.52)))
    assert min(region.shape[:2]) >= MIN_REGION_SIDE_PX
    assert min(region.shape[:2]) >= 2 * MIN_MARGIN_PX


@pytest.mark.parametrize("box", [(0.5, 0.5, 0.5, 0.9), (0.6, 0.2, 0.4, 0.8),
                                 (float("nan"), 0.0, 1.0, 1.0)], ids=["empty", "inverted", "nan"])
def test_unusable_boxes_give_the_whole_frame(box: tuple[float, float, float, float]) -> None:
    assert product_region(_inputs(box)).shape[:2] == (400, 600)


# --- the scorer --------------------------------------------------------------------------------


def test_scores_a_batch_from_the_preprocessor(scorer: QualityScorer) -> None:
    items = [preprocessed(_scene(0)), preprocessed(_scene(1, "bottle")),
             preprocessed(synthetic.white_product_on_white(size=(500, 500)))]
    results = scorer.score(items)
    assert len(results) == len(items)
    for (inputs, _), result in zip(items, results, strict=True):
        assert set(result) == {"quality.technical", "quality.score", "quality.scorer"}
        assert result["quality.scorer"] == "card-v1"
        assert 0.0 <= result["quality.score"] <= 1.0
        # BRISQUE of the product region, not of the frame.
        region_points = scorer.brisque.score([np.ascontiguousarray(product_region(inputs))])[0]
        assert result["quality.technical"] == pytest.approx(region_points, abs=1e-6)


def test_a_batch_scores_each_image_as_alone(scorer: QualityScorer) -> None:
    items = [preprocessed(_scene(2)), preprocessed(_scene(3, "disc", 520)),
             preprocessed(synthetic.render_product(size=(640, 400), background="busy"))]
    together = [r["quality.technical"] for r in scorer.score(items)]
    alone = [scorer.score([item])[0]["quality.technical"] for item in items]
    assert np.abs(np.array(together) - np.array(alone)).max() < 1e-3


def test_blur_and_noise_mostly_worsen_technical_quality(scorer: QualityScorer) -> None:
    """Sanity, not a benchmark: along each distortion ladder BRISQUE points should mostly rise.

    The noise ladder starts from a slightly noisy picture: a clean render is smoother than any
    photograph, and BRISQUE, trained on photographs, rates a little sensor noise as more natural
    (measured: ~45 points clean, ~20 at sigma 8-10, rising again beyond)."""
    ordered = total = 0
    for seed, shape in ((0, "box"), (1, "bottle"), (2, "disc")):
        clean = _scene(seed, shape)
        ladders = [[clean, synthetic.blur(clean, 1.5), synthetic.blur(clean, 3.5)],
                   [_noisy(clean, 8), _noisy(clean, 20), _noisy(clean, 40)]]
        for ladder in ladders:
            points = [r["quality.technical"] for r in scorer.score(
                [preprocessed(image) for image in ladder])]
            for better, worse in itertools.combinations(points, 2):
                ordered += worse > better
                total += 1
    assert ordered >= 0.8 * total, f"only {ordered}/{total} steps were ordered"


def test_frames_too_small_for_brisque_get_the_fallback(scorer: QualityScorer) -> None:
    tiny = ModelInputs(rgb=np.full((6, 20, 3), 128, np.uint8), product_box=(0, 0, 1, 1))
    attributes = {"file.longest_side": 20, "composition.fill_ratio": 1.0}
    result = scorer.score([(tiny, attributes), preprocessed(_scene(0))])
    assert result[0]["quality.technical"] == UNMEASURABLE_POINTS
    assert result[1]["quality.technical"] < UNMEASURABLE_POINTS


def test_missing_attributes_are_named(scorer: QualityScorer) -> None:
    inputs, attributes = preprocessed(_scene(0))
    partial = {k: v for k, v in attributes.items() if k != "composition.fill_ratio"}
    with pytest.raises(KeyError, match=r"composition\.fill_ratio"):
        scorer.score([(inputs, partial)])


def test_two_card_versions_side_by_side(scorer: QualityScorer) -> None:
    baseline = QualityScorer("card-v0", device=CPU)
    items = [preprocessed(_scene(0)), preprocessed(synthetic.blur(_scene(0), 3.5))]
    old, new = baseline.score(items), scorer.score(items)
    for (_, attributes), before, after in zip(items, old, new, strict=True):
        assert (before["quality.scorer"], after["quality.scorer"]) == ("card-v0", "card-v1")
        assert before["quality.technical"] == after["quality.technical"]
        # The preprocessor scores with card v0 too: the same number.
        assert before["quality.score"] == pytest.approx(attributes["quality.score"])


def test_unknown_card_is_refused() -> None:
    with pytest.raises(KeyError, match="card-v9"):
        QualityScorer("card-v9", device=CPU)


# --- scorer cards ------------------------------------------------------------------------------

ATTRIBUTES: dict[str, AttributeValue] = {
    "quality.technical": 30.0, "sharpness.score": 0.6, "file.longest_side": 800,
    "composition.fill_ratio": 0.85,
}


def test_registry_holds_both_versions() -> None:
    assert {"card-v0", "card-v1"} <= set(scorer_cards.names())
    assert scorer_cards.get("card-v1").name == "card-v1"
    with pytest.raises(KeyError, match="known"):
        scorer_cards.get("card-v2")


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="twice"):
        scorer_cards.register(scorer_cards.CardV1())


def test_card_v0_is_the_quality_module_formula() -> None:
    card = scorer_cards.get("card-v0")
    expected = ScorerCardV0().attributes(dict(ATTRIBUTES))["quality.score"]
    assert card.score(ATTRIBUTES) == expected


def test_card_v1_formula() -> None:
    card = scorer_cards.get("card-v1")
    # 0.5 * (1 - 30/100) + 0.3 * (800/1600) + 0.2 * 1
    assert card.score(ATTRIBUTES) == pytest.approx(0.5 * 0.7 + 0.3 * 0.5 + 0.2 * 1.0)
    assert set(card.needs) == {"quality.technical", "file.longest_side", "composition.fill_ratio"}


@dataclass(frozen=True)
class _Case:
    technical: float
    expected_term: float


@pytest.mark.parametrize("case", [_Case(-5.0, 1.0), _Case(0.0, 1.0), _Case(50.0, 0.5),
                                  _Case(100.0, 0.0), _Case(140.0, 0.0)],
                         ids=["negative", "zero", "half", "hundred", "beyond"])
def test_card_v1_technical_term_is_clamped(case: _Case) -> None:
    assert scorer_cards.CardV1().technical(case.technical) == pytest.approx(case.expected_term)


def test_card_v1_is_monotone_in_brisque() -> None:
    card = scorer_cards.get("card-v1")
    scores = [card.score({**ATTRIBUTES, "quality.technical": points})
              for points in np.linspace(-10, 120, 27)]
    assert all(a >= b for a, b in itertools.pairwise(scores))
    assert min(scores) >= 0.0 and max(scores) <= 1.0


@pytest.mark.parametrize("value,error", [(True, TypeError), ("30", TypeError),
                                         (float("nan"), ValueError)], ids=["bool", "str", "nan"])
def test_cards_refuse_non_numbers(value: AttributeValue, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"quality\.technical"):
        scorer_cards.get("card-v1").score({**ATTRIBUTES, "quality.technical": value})
