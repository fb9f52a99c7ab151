"""The parameters of each fix (rules.fixes): validated when a policy file is loaded, so a bad value
fails there, not on the first image a rule fixes. Defaults and limits have their home here.
"""

from __future__ import annotations

import pydantic

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
