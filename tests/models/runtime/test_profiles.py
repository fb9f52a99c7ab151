"""Optimisation profiles: what TensorRT's `set_shape` accepts, and the ORT EP spelling."""

from __future__ import annotations

import pytest

from models.artifacts import BRISQUE_SVR, NUDITY_DETECTOR, TEXT_DETECTOR
from models.runtime.profiles import (
    DEFAULT_BATCH_PROFILE,
    ProfileError,
    ShapeRange,
    batch_profile,
    check_against_model,
    default_sample_shape,
    ort_profile_options,
    profile_for,
)


def test_batch_profile_defaults_opt_to_max() -> None:
    assert batch_profile(32) == (1, 32, 32)
    assert batch_profile(32, 8) == (1, 8, 32)
    assert DEFAULT_BATCH_PROFILE[0] == 1


@pytest.mark.parametrize(("max_batch", "opt"), [(8, 9), (8, 0), (0, None)])
def test_batch_profile_rejects_impossible_ranges(max_batch: int, opt: int | None) -> None:
    with pytest.raises(ProfileError):
        batch_profile(max_batch, opt)


def test_fixed_and_ranged_sample_dims() -> None:
    profile = profile_for("x", (1, 4, 8), (3, (32, 640, 640), 320))
    assert profile == {"x": ShapeRange((1, 3, 32, 320), (4, 3, 640, 320), (8, 3, 640, 320))}


@pytest.mark.parametrize(
    ("low", "opt", "high"),
    [((1, 3), (2, 3), (1, 3)), ((0, 3), (1, 3), (2, 3)), ((1, 3), (1, 3), (1, 3, 1))],
    ids=["opt-above-max", "zero", "rank"],
)
def test_shape_range_validates(low: tuple[int, ...], opt: tuple[int, ...],
                               high: tuple[int, ...]) -> None:
    with pytest.raises(ProfileError):
        ShapeRange(low, opt, high)


def test_contains() -> None:
    shape_range = ShapeRange((1, 3, 32, 32), (4, 3, 640, 640), (8, 3, 640, 640))
    assert shape_range.contains((8, 3, 32, 640))
    assert not shape_range.contains((9, 3, 32, 32))
    assert not shape_range.contains((1, 3, 641, 32))
    assert not shape_range.contains((1, 3, 32))


def test_registered_engine_shapes() -> None:
    assert default_sample_shape(NUDITY_DETECTOR) == (3, 320, 320)
    assert default_sample_shape(TEXT_DETECTOR) == (3, (32, 640, 640), (32, 640, 640))
    assert default_sample_shape(BRISQUE_SVR) is None


def test_check_against_model_static_dims() -> None:
    profile = profile_for("images", (1, 8, 16), (3, 320, 320))
    check_against_model(profile, {"images": (-1, 3, -1, -1)})
    check_against_model(profile, {"images": (None, 3, 320, 320)})
    with pytest.raises(ProfileError, match="axis 1"):
        check_against_model(profile, {"images": (-1, 1, -1, -1)})
    with pytest.raises(ProfileError, match="rank"):
        check_against_model(profile, {"images": (-1, 3, -1)})
    with pytest.raises(ProfileError, match="do not match"):
        check_against_model(profile, {"pixels": (-1, 3, -1, -1)})


def test_ort_tensorrt_ep_spelling() -> None:
    options = ort_profile_options(profile_for("images", (1, 8, 16), (3, 320, 320)))
    assert options == {
        "trt_profile_min_shapes": "images:1x3x320x320",
        "trt_profile_opt_shapes": "images:8x3x320x320",
        "trt_profile_max_shapes": "images:16x3x320x320",
    }
