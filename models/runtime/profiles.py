"""The input shapes an engine is built for: one optimisation profile per model.

A TensorRT engine accepts only shapes inside the profile it was built with, and the profile is
part of the engine cache key, so the shapes chosen here must be the same ones the deployments ask
for at run time and `curator models build-engines` builds ahead of time. That is why the
per-model defaults live in this one module instead of in each caller.

Pure Python (no TensorRT, no CUDA): the cache key and the CPU tests depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.artifacts import (
    FACE_DETECTOR,
    NUDITY_DETECTOR,
    OBJECT_DETECTOR,
    PALM_DETECTOR,
    TEXT_DETECTOR,
    ModelArtifact,
)

Shape = tuple[int, ...]
# One non-batch dimension: fixed (int) or a (min, opt, max) range for dynamic dimensions.
SampleDim = int | tuple[int, int, int]
SampleShape = tuple[SampleDim, ...]
# (min, opt, max) of the batch axis. Serve's @serve.batch max_batch_size must be <= max; larger
# batches still run (split into chunks of max) but never at the tuned size.
BatchProfile = tuple[int, int, int]

# The default max_batch_size_limit (curator.core.settings takes it from here) and of
# `build-engines --max-batch`: both must use the same number, or prebuilt engines are not found
# (different key).
DEFAULT_MAX_BATCH = 32


class ProfileError(ValueError):
    """An optimisation profile that TensorRT would reject (or that cannot be formed)."""


def batch_profile(max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int | None = None) -> BatchProfile:
    """(1, opt, max) for a Serve batcher whose max_batch_size is `max_batch`.

    The optimum defaults to the maximum: under load the batcher fills its batches, and that is
    when the tactic choice matters; small batches at low load have latency to spare.
    """
    opt = max_batch if opt_batch is None else opt_batch
    if not 1 <= opt <= max_batch:
        raise ProfileError(f"batch profile needs 1 <= opt ({opt}) <= max ({max_batch})")
    return (1, opt, max_batch)


DEFAULT_BATCH_PROFILE: BatchProfile = batch_profile()


@dataclass(frozen=True)
class ShapeRange:
    """Minimum, optimum and maximum shape of one input, as `IOptimizationProfile.set_shape`
    takes them (https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/
    Core/OptimizationProfile.html): same rank, and min <= opt <= max in every dimension."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ProfileError(f"min/opt/max ranks differ: {self.min} {self.opt} {self.max}")
        for low, opt, high in zip(self.min, self.opt, self.max, strict=True):
            if not 1 <= low <= opt <= high:
                raise ProfileError(f"need 1 <= min <= opt <= max per dim: {self}")

    def contains(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(
            low <= size <= high for low, size, high in zip(self.min, shape, self.max, strict=True)
        )

    def as_lists(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


Profile = Mapping[str, ShapeRange]  # input tensor name -> its range

# Non-batch dims each engine is built for. NudeNet is trained at 320 x 320 and always gets a
# 320 canvas. The text detector sees whole frames of at most 640 px (models.preprocess), on a
# canvas of multiples of 32 chosen by the detector, so its spatial dims stay dynamic in 32..640.
_ENGINE_SAMPLE_SHAPES: dict[str, SampleShape] = {
    NUDITY_DETECTOR.name: (3, 320, 320),
    TEXT_DETECTOR.name: (3, (32, 640, 640), (32, 640, 640)),
    # NanoDet was trained at 416 x 416 and the decoder's anchor grids are those of that canvas.
    OBJECT_DETECTOR.name: (3, 416, 416),
    # MediaPipe's palm and full-range face detectors: fixed 192 x 192 canvases (their anchors).
    PALM_DETECTOR.name: (3, 192, 192),
    FACE_DETECTOR.name: (3, 192, 192),
}


def default_sample_shape(artifact: ModelArtifact) -> SampleShape | None:
    """The non-batch input shape engines of this artifact are built for, if one is known."""
    if artifact.name in _ENGINE_SAMPLE_SHAPES:
        return _ENGINE_SAMPLE_SHAPES[artifact.name]
    if artifact.input_size is not None:
        height, width = artifact.input_size
        return (3, height, width)
    return None


def profile_for(
    input_name: str, batch: BatchProfile, sample_shape: SampleShape
) -> dict[str, ShapeRange]:
    """The one-input profile: the batch range on axis 0, then each sample dim fixed or ranged."""
    low, opt, high = batch
    mins, opts, maxs = [low], [opt], [high]
    for dim in sample_shape:
        if isinstance(dim, int):
            mins.append(dim)
            opts.append(dim)
            maxs.append(dim)
        else:
            mins.append(dim[0])
            opts.append(dim[1])
            maxs.append(dim[2])
    return {input_name: ShapeRange(tuple(mins), tuple(opts), tuple(maxs))}


def check_against_model(profile: Profile, model_inputs: Mapping[str, Sequence[int | None]]) -> None:
    """ProfileError unless the profile names every model input with its rank, and agrees with
    every static dimension (the third rule of `set_shape`: a fixed dim must be min == opt ==
    max == that size). `model_inputs` holds None (or -1) for dynamic dims."""
    missing = set(model_inputs) - set(profile)
    extra = set(profile) - set(model_inputs)
    if missing or extra:
        raise ProfileError(
            f"profile inputs {sorted(profile)} do not match model inputs {sorted(model_inputs)}"
        )
    for name, dims in model_inputs.items():
        shape_range = profile[name]
        if len(dims) != len(shape_range.min):
            raise ProfileError(f"input {name!r} has rank {len(dims)}, profile {shape_range}")
        for axis, size in enumerate(dims):
            if size is None or size < 0:
                continue
            if not shape_range.min[axis] == shape_range.max[axis] == size:
                raise ProfileError(
                    f"input {name!r} axis {axis} is fixed at {size} in the model, "
                    f"profile says {shape_range}"
                )


def ort_profile_options(profile: Profile) -> dict[str, str]:
    """ONNX Runtime TensorRT EP spelling of the same profile: "name:1x3x320x320,other:..."."""

    def spell(pick: str) -> str:
        return ",".join(
            f"{name}:" + "x".join(str(size) for size in getattr(shape_range, pick))
            for name, shape_range in sorted(profile.items())
        )

    return {
        "trt_profile_min_shapes": spell("min"),
        "trt_profile_opt_shapes": spell("opt"),
        "trt_profile_max_shapes": spell("max"),
    }
