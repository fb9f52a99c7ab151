"""Versioned scorer cards: named, documented formulas that turn attributes into quality.score.

A card is chosen by name, so two versions can run side by side (one QualityScorer deployment per
card, the ingress splitting traffic between them) and every decision records the card that made
it in `quality.scorer`. A card never changes once released: a new formula is a new name.

card-v0  (models/quality.py)  0.5 * sharpness + 0.3 * resolution + 0.2 * fill
card-v1                       0.5 * technical + 0.3 * resolution + 0.2 * fill

    technical  = 1 - clamp(quality.technical / 100, 0, 1)
                 BRISQUE points of the product region, lower is better; 0 points -> 1,
                 100 points or worse -> 0, linear (monotone) in between
    resolution = min(1, file.longest_side / 1600)               as card-v0
    fill       = clamp(1 - |composition.fill_ratio - 0.85| / 0.85, 0, 1)   as card-v0

card-v1 keeps v0's weights and swaps only its technical term (Laplacian-variance sharpness) for
BRISQUE, which also sees noise, blocking and ringing, so an A/B between the two measures that one
change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from curator.contracts.registry import Registry
from curator.contracts.vocabulary import AttributeValue
from models.quality import SCORER_NAME as CARD_V0_NAME
from models.quality import ScorerCardV0

Attributes = Mapping[str, AttributeValue]

# The technical-only tier's card (no model stages): card v0 needs only Preprocess's attributes.
TECHNICAL_CARD = CARD_V0_NAME


class ScorerCard(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def needs(self) -> tuple[str, ...]:
        """Attribute names `score` reads."""
        ...

    def score(self, attributes: Attributes) -> float:
        """quality.score, 0..1, higher is better."""
        ...


_CARDS: Registry[ScorerCard] = Registry("scorer card")


def register(card: ScorerCard) -> ScorerCard:
    return _CARDS.add(card.name, card)


def get(name: str) -> ScorerCard:
    return _CARDS.get(name)


def names() -> list[str]:
    return _CARDS.names()


def number(attributes: Attributes, name: str) -> float:
    """A finite number from the attributes; KeyError/TypeError/ValueError name the attribute."""
    if name not in attributes:
        raise KeyError(f"scorer card needs attribute {name!r}, which was not measured")
    value = attributes[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number to score, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite to score, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CardV0:
    """The baseline: models/quality.py's formula, unchanged (that module owns it)."""

    formula: ScorerCardV0 = field(default_factory=ScorerCardV0)
    name: str = CARD_V0_NAME
    needs: tuple[str, ...] = ("sharpness.score", "file.longest_side", "composition.fill_ratio")

    def score(self, attributes: Attributes) -> float:
        return self.formula.score(
            sharpness=number(attributes, "sharpness.score"),
            longest_side_px=int(number(attributes, "file.longest_side")),
            fill_ratio=number(attributes, "composition.fill_ratio"),
        )


@dataclass(frozen=True)
class CardV1:
    """BRISQUE-based; see the module docstring for the formula."""

    technical_weight: float = 0.5
    resolution_weight: float = 0.3
    fill_weight: float = 0.2
    worst_brisque_points: float = 100.0  # quality.technical at (and beyond) which the term is 0
    full_resolution_px: int = 1600  # longest side (px) at which the resolution term is 1
    ideal_fill_ratio: float = 0.85  # composition.fill_ratio at which the fill term is 1
    name: str = "card-v1"
    needs: tuple[str, ...] = ("quality.technical", "file.longest_side", "composition.fill_ratio")

    def technical(self, brisque_points: float) -> float:
        return 1.0 - _clamp(brisque_points / self.worst_brisque_points)

    def score(self, attributes: Attributes) -> float:
        technical = self.technical(number(attributes, "quality.technical"))
        resolution = min(1.0, number(attributes, "file.longest_side") / self.full_resolution_px)
        fill_ratio = number(attributes, "composition.fill_ratio")
        fill = _clamp(1.0 - abs(fill_ratio - self.ideal_fill_ratio) / self.ideal_fill_ratio)
        return _clamp(self.technical_weight * technical + self.resolution_weight * resolution
                      + self.fill_weight * fill)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


CARD_V0 = register(CardV0())
CARD_V1 = register(CardV1())
