"""People, judged once every detector has run: `people.*` from the boxes of the person detectors.

A reviewer answers "person" for any human anywhere in the picture: a face, a body from any side,
a model cut off by the frame, hands or fingers holding the product, people in a scene, and people
printed on packaging or shown on a screen. No single model sees all of these, so the detectors
that find parts of people each add `kind="person"` boxes (faces and hands: MediaPipe's
BlazeFace and palm detectors, models/detectors/blaze.py; bodies: the COCO object detector,
models/detectors/objects.py) and this module reads them together:

- `people.person`: any person box at all, but a face or hand with no body anywhere in the
  picture only when the detector is sure of it (`lone_part_min_score`);
- `people.face_count`, `people.hand_count`, `people.body_count`: per label;
- `people.on_product`: every person box lies inside a thing that carries pictures, so the people
  seen are printed on or shown by the product: a screen or a cover the object detector names
  (`PICTURE_CARRIERS`), or packaging on a plain backdrop: a separated object that is a whole,
  solid rectangle (a DVD case, a box) well inside the frame. The detector still reports them as
  people; the policy decides that such a person is part of the product (rules/policies/base.yaml,
  main.people.none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from curator.contracts.vocabulary import AttributeValue
from models.detectors.base import DetectedBox, FrameBox
from models.preprocess import ItemRegion

PERSON_KIND = "person"
OBJECT_KIND = "object"
# COCO classes on which a person can be a picture rather than a presence: screens, and printed
# covers (packaging reads as "book" to COCO models, which have no box class).
PICTURE_CARRIERS: frozenset[str] = frozenset({"tv", "laptop", "cell phone", "book"})


@dataclass(frozen=True)
class PeopleJudgeSettings:
    """`inside_share` 0.85: a face on a phone's screen lies wholly inside the phone's box, while a
    hand holding the phone overlaps it by half or less; the margin absorbs box jitter.
    `carrier_min_score` 0.35: carriers are only believed when the object detector is fairly sure
    of them, since a false screen would hide a real person."""

    inside_share: float = 0.85
    carrier_min_score: float = 0.35
    # Packaging: a separated object whose pixels fill at least this share of its box (a DVD
    # case 0.95; a model's silhouette on white 0.4-0.7) ...
    package_min_solidity: float = 0.85
    # ... lying more than this far (frame units) from every edge: whole, not a close-up of a
    # body. 0: touching no edge, as composition.touches_edge reads "cut by the frame"; a DVD
    # case shot tight on white keeps only 3 of 512 analysis px of backdrop above it.
    package_min_margin: float = 0.0
    # With no body in the picture, a face or a hand alone is a person only from this score up
    # (the detectors' own bars are 0.6 and 0.7). Alone, they are where the face and palm models
    # misread things: a beige toaster, wooden boards, a jersey's collar (hands at 0.71-0.83), a
    # camera lens, a plant, a statue's face (faces at 0.67-0.75). Real hands and faces with no
    # body detected (a hand holding the product, a face above an outfit) scored 0.89-0.98, with
    # one hand holding a stylus at 0.77 the cost. Next to a body they keep the detectors' bars.
    lone_part_min_score: float = 0.85

    def __post_init__(self) -> None:
        for name in ("inside_share", "carrier_min_score", "package_min_solidity",
                     "lone_part_min_score"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if not 0.0 <= self.package_min_margin < 0.5:
            raise ValueError(f"package_min_margin must be in [0, 0.5), "
                             f"got {self.package_min_margin}")


def _area(box: FrameBox) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def share_inside(inner: FrameBox, outer: FrameBox) -> float:
    """The share of `inner`'s area that lies inside `outer` (0 for an empty inner box)."""
    area = _area(inner)
    if area <= 0.0:
        return 0.0
    overlap = (max(inner[0], outer[0]), max(inner[1], outer[1]),
               min(inner[2], outer[2]), min(inner[3], outer[3]))
    return _area(overlap) / area


def is_package(region: ItemRegion, settings: PeopleJudgeSettings) -> bool:
    x0, y0, x1, y1 = region.box
    margin = settings.package_min_margin
    whole = x0 > margin and y0 > margin and x1 < 1 - margin and y1 < 1 - margin
    return whole and _area(region.box) > 0 and \
        region.area / _area(region.box) >= settings.package_min_solidity


def judge_people(boxes: Sequence[DetectedBox], items: Sequence[ItemRegion] = (),
                 settings: PeopleJudgeSettings = PeopleJudgeSettings()
                 ) -> dict[str, AttributeValue]:
    """`items`: the objects the background separates (ModelInputs.items), for packaging."""
    people = [box for box in boxes if box.kind == PERSON_KIND]
    if not any(box.label == "body" for box in people):
        people = [box for box in people if box.score >= settings.lone_part_min_score]
    carriers = [box.box for box in boxes
                if box.kind == OBJECT_KIND and box.label in PICTURE_CARRIERS
                and box.score >= settings.carrier_min_score]
    carriers += [region.box for region in items if is_package(region, settings)]

    def on_a_carrier(person: DetectedBox) -> bool:
        return any(share_inside(person.box, carrier) >= settings.inside_share
                   for carrier in carriers)

    return {
        "people.person": bool(people),
        "people.face_count": sum(1 for box in people if box.label == "face"),
        "people.hand_count": sum(1 for box in people if box.label == "hand"),
        "people.body_count": sum(1 for box in people if box.label == "body"),
        "people.on_product": bool(people) and all(on_a_carrier(box) for box in people),
    }
