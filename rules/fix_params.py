"""The fix catalogue: each fix's name, purpose, target attributes and parameters, in the order
fixes run (rules.fixes says why). Validated when a policy file is loaded, so a bad value fails
there, not on the first image a rule fixes. Defaults and limits have their home here.

No image library is imported here: policy validation (rules.schema) needs only this, and the
pixel work (rules.fixes, cv2, PIL) loads only where fixes are applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic

from curator.contracts.registry import Registry

# The marketplace's size limits on the longest side (image.size.* in rules/policies/base.yaml);
# defaults of the fixes' parameters, so a fix does not create a size violation.
MIN_LONGEST_SIDE_PX = 500
MAX_LONGEST_SIDE_PX = 10_000


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class TrimBorderParams(_Params):
    pass


class WhitenBackgroundParams(_Params):
    min_level: int = pydantic.Field(
        235, ge=200, le=255, description="levels: a pixel with every channel >= this is near-white"
    )
    min_share: float = pydantic.Field(
        0.8, gt=0, le=1,
        description="fraction of the background that must already be near-white; below it the "
        "backdrop is grey, coloured or a scene, and whitening would repaint it",
    )


class PadToFillParams(_Params):
    fill_ratio: float = pydantic.Field(
        0.85, ge=0.1, le=1.0,
        description="product box over frame on its binding axis, linear (composition.fill_ratio)",
    )
    aspect_ratio: float = pydantic.Field(
        1.0, ge=0.2, le=5.0, description="width / height of the output canvas"
    )
    min_longest_side: int = pydantic.Field(
        MIN_LONGEST_SIDE_PX, ge=1,
        description="px: white margin keeps the canvas at least this long (or as long as the input"
        " when it is shorter), since fixes never upscale",
    )
    max_longest_side: int = pydantic.Field(
        MAX_LONGEST_SIDE_PX, ge=1, description="px: a larger canvas is shrunk to this"
    )

    @pydantic.model_validator(mode="after")
    def _sides_in_order(self) -> PadToFillParams:
        if self.min_longest_side > self.max_longest_side:
            raise ValueError("min_longest_side must not exceed max_longest_side")
        return self


class DownscaleParams(_Params):
    max_side: int = pydantic.Field(
        MAX_LONGEST_SIDE_PX, ge=64, description="px: the longest side is shrunk to at most this"
    )


class ConvertToSrgbJpegParams(_Params):
    pass


@dataclass(frozen=True)
class FixSpec:
    name: str
    description: str
    params: type[pydantic.BaseModel]
    targets: tuple[str, ...]  # attribute names the fix is meant to change


_CATALOGUE: Registry[FixSpec] = Registry("fix")
for _spec in (
    FixSpec(
        "trim_border", "Paint a frame or line along the edges pure white, keeping the canvas size",
        TrimBorderParams, ("frame.border",),
    ),
    FixSpec(
        "whiten_background",
        "Set the near-white background connected to the edges to pure white (255,255,255)",
        WhitenBackgroundParams, ("background.pure_white_fraction", "background.white_fraction"),
    ),
    FixSpec(
        "pad_to_fill",
        "Crop to the product and centre it on white so it fills fill_ratio of the frame",
        PadToFillParams, ("composition.fill_ratio", "file.aspect_ratio"),
    ),
    FixSpec(
        "downscale", "Shrink (Lanczos) so the longest side is at most max_side",
        DownscaleParams, ("file.longest_side",),
    ),
    FixSpec(
        "convert_to_srgb_jpeg",
        "Re-encode as a baseline sRGB JPEG (CMYK, 16-bit, WEBP, palette; transparency on white)",
        ConvertToSrgbJpegParams, ("file.format", "file.color_mode", "background.transparent"),
    ),
):
    _CATALOGUE.add(_spec.name, _spec)

# In canonical order: the order fixes run.
FIX_SPECS: dict[str, FixSpec] = _CATALOGUE.in_order()


def fix_names() -> tuple[str, ...]:
    return tuple(FIX_SPECS)


def validate_fix_params(name: str, params: Mapping[str, Any] | None) -> pydantic.BaseModel:
    """The parameters of fix `name`, validated; `ValueError` saying what is wrong."""
    spec = FIX_SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown fix {name!r}; known fixes: {', '.join(FIX_SPECS)}")
    try:
        return spec.params.model_validate(dict(params or {}))
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'params'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(f"invalid params for fix {name!r}: {problems}") from None
