"""models.detectors.db_postprocess: DB geometry and region extraction on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from models.detectors import db_postprocess as db
from models.detectors.text_settings import TextDetectorSettings

SETTINGS = TextDetectorSettings()


def test_unclip_grows_by_area_times_ratio_over_perimeter() -> None:
    # 100 x 20: area 2000, perimeter 240, ratio 1.6 -> 13.33 px on every side.
    (centre, size, angle) = db.unclip(((50.0, 40.0), (100.0, 20.0), 0.0), 1.6)
    assert centre == (50.0, 40.0)
    assert angle == 0.0
    assert size == pytest.approx((100 + 2 * 40 / 3, 20 + 2 * 40 / 3))


def test_unclip_margin_is_capped() -> None:
    (_, size, _) = db.unclip(((0.0, 0.0), (300.0, 200.0), 0.0), 1.6, max_margin=5.0)
    assert size == pytest.approx((310.0, 210.0))


@pytest.mark.parametrize(
    ("rect", "expected_size"),
    [
        (((0.0, 0.0), (100.0, 20.0), 0.0), (100.0, 30.0)),  # a line: thicker, not longer
        (((0.0, 0.0), (20.0, 100.0), 90.0), (30.0, 100.0)),  # the same line, described turned
        (((0.0, 0.0), (20.0, 22.0), 0.0), (20.0, 32.0)),  # squarish, upright: grown in y
        (((0.0, 0.0), (20.0, 22.0), 90.0), (30.0, 22.0)),  # squarish, its width runs in y
    ],
    ids=["line", "line-turned", "square-upright", "square-turned"],
)
def test_grow_across(rect: db.RotatedRect, expected_size: tuple[float, float]) -> None:
    (_, size, _) = db.grow_across(rect, 5.0, min_line_aspect=1.5)
    assert size == pytest.approx(expected_size)


def test_box_score_is_the_mean_inside_the_polygon() -> None:
    probability = np.zeros((40, 40), dtype=np.float32)
    probability[10:20, 10:30] = 1.0
    # A box from y 10 to 29 (inclusive) over the block: half of its rows are text.
    corners = np.array([[10, 10], [29, 10], [29, 29], [10, 29]], dtype=np.float32)
    assert db.box_score(probability, corners) == pytest.approx(0.5, abs=0.01)


def _map_with(*blocks: tuple[int, int, int, int, float]) -> np.ndarray:
    probability = np.zeros((200, 300), dtype=np.float32)
    for y0, y1, x0, x1, level in blocks:
        probability[y0:y1, x0:x1] = level
    return probability


def test_regions_are_read_scored_and_unclipped() -> None:
    probability = _map_with(
        (20, 30, 20, 120, 0.9),  # a line kernel, 100 x 10
        (100, 108, 150, 250, 0.8),  # another, 100 x 8
        (60, 62, 60, 62, 0.9),  # a speck: shorter side under min_side_px
        (150, 170, 20, 120, 0.4),  # above the binary threshold, below the box threshold
    )
    regions = db.regions_from_map(probability, db.binarise(probability[None], SETTINGS)[0],
                                  SETTINGS)
    regions.sort(key=lambda region: region.rect[0][1])
    assert len(regions) == 2
    first, second = regions
    # Scored over the kernel's rectangle, boundary pixels included (a little below the level).
    assert 0.7 < first.score <= 0.9
    assert 0.6 < second.score <= 0.8
    # The kernel grown back: centre kept, about area * 1.6 / perimeter added on every side.
    assert first.rect[0] == pytest.approx((69.5, 24.5), abs=1.0)
    assert first.text_height == pytest.approx(10 + 2 * 1000 * 1.6 / 220, abs=2.0)
    assert max(first.rect[1]) == pytest.approx(100 + 2 * 1000 * 1.6 / 220, abs=2.0)


def test_max_candidates_bounds_the_work() -> None:
    blocks = [(10 + 20 * i, 18 + 20 * i, 10, 100, 0.9) for i in range(8)]
    probability = _map_with(*blocks)
    settings = TextDetectorSettings(max_candidates=3)
    regions = db.regions_from_map(probability, db.binarise(probability[None], settings)[0],
                                  settings)
    assert len(regions) == 3


def test_settings_fail_fast() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        TextDetectorSettings(canvas_px=500)
    with pytest.raises(ValueError, match="box_threshold"):
        TextDetectorSettings(box_threshold=1.5)
