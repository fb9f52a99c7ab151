"""Scorer card v0: a transparent quality score from the technical attributes alone.

    quality.score = 0.5 * sharpness + 0.3 * resolution + 0.2 * fill

    sharpness  = sharpness.score                      (0.5 at laplacian_var 100)
    resolution = min(1, file.longest_side / 1600)     (1600 px: zoomable on marketplaces)
    fill       = clamp(1 - |composition.fill_ratio - 0.85| / 0.85, 0, 1)
                                                      (1 at the packshot ideal of 85 % fill)

Every term is 0..1 and so is the score. It ranks the images of one listing (selection) and is the
baseline the BRISQUE-based scorer v1 is compared against; it judges nothing a rule could not
judge directly, by design. `quality.scorer` names the card so decisions can be traced to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from curator.contracts.vocabulary import AttributeValue

SCORER_NAME = "card-v0"


@dataclass(frozen=True)
class ScorerCardV0:
    sharpness_weight: float = 0.5
    resolution_weight: float = 0.3
    fill_weight: float = 0.2
    full_resolution_px: int = 1600  # longest side (px) at which the resolution term is 1
    ideal_fill_ratio: float = 0.85  # composition.fill_ratio at which the fill term is 1

    def score(self, sharpness: float, longest_side_px: int, fill_ratio: float) -> float:
        resolution = min(1.0, longest_side_px / self.full_resolution_px)
        fill = 1.0 - abs(fill_ratio - self.ideal_fill_ratio) / self.ideal_fill_ratio
        fill = min(1.0, max(0.0, fill))
        total = (
            self.sharpness_weight * min(1.0, max(0.0, sharpness))
            + self.resolution_weight * resolution
            + self.fill_weight * fill
        )
        return min(1.0, max(0.0, total))

    def attributes(self, attributes: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        """quality.score and quality.scorer from the technical attributes already measured."""
        score = self.score(
            sharpness=_number(attributes, "sharpness.score"),
            longest_side_px=int(_number(attributes, "file.longest_side")),
            fill_ratio=_number(attributes, "composition.fill_ratio"),
        )
        return {"quality.score": score, "quality.scorer": SCORER_NAME}


def _number(attributes: dict[str, AttributeValue], name: str) -> float:
    value = attributes[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number to score, got {value!r}")
    return float(value)
