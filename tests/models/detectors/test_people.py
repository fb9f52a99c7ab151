"""models.detectors.people: people.* from the boxes the person and object detectors drew."""

from __future__ import annotations

import pytest

from curator.contracts import vocabulary
from models.detectors.base import DetectedBox
from models.detectors.people import PeopleJudgeSettings, judge_people, share_inside
from models.preprocess import ItemRegion


def person(label: str, box: tuple[float, float, float, float], score: float = 0.9) -> DetectedBox:
    return DetectedBox("person", label, score, box)


def thing(label: str, box: tuple[float, float, float, float], score: float = 0.8) -> DetectedBox:
    return DetectedBox("object", label, score, box)


def test_nobody_on_a_packshot_with_text_and_objects() -> None:
    found = judge_people([thing("bottle", (0.3, 0.1, 0.7, 0.9)),
                          DetectedBox("text", "on_product", 0.9, (0.4, 0.4, 0.6, 0.5))])
    assert found == {"people.person": False, "people.face_count": 0, "people.hand_count": 0,
                     "people.body_count": 0, "people.on_product": False}
    for name, value in found.items():
        vocabulary.check_value(name, value)


def test_any_part_of_a_person_is_a_person_and_is_counted_by_label() -> None:
    found = judge_people([
        person("hand", (0.1, 0.5, 0.3, 0.8)),
        person("hand", (0.7, 0.5, 0.9, 0.8)),
        person("face", (0.4, 0.05, 0.55, 0.25)),
        person("body", (0.3, 0.0, 0.7, 1.0)),
    ])
    assert found["people.person"] is True
    assert (found["people.face_count"], found["people.hand_count"],
            found["people.body_count"]) == (1, 2, 1)
    assert found["people.on_product"] is False


def test_a_hand_alone_is_a_person() -> None:
    assert judge_people([person("hand", (0.0, 0.6, 0.2, 1.0))])["people.person"] is True


@pytest.mark.parametrize("label", ["hand", "face"])
def test_an_unsure_hand_or_face_alone_is_nobody(label: str) -> None:
    """A palm or face reading at 0.75 with no body anywhere: the models' misreadings of beige,
    wood and lenses live there. Beside a body the same reading counts."""
    part = person(label, (0.4, 0.4, 0.55, 0.55), score=0.75)
    alone = judge_people([part])
    assert alone["people.person"] is False
    assert (alone["people.face_count"], alone["people.hand_count"]) == (0, 0)
    with_body = judge_people([part, person("body", (0.3, 0.0, 0.7, 1.0), score=0.6)])
    assert with_body["people.person"] is True
    assert with_body["people.face_count"] + with_body["people.hand_count"] == 1


def test_a_face_on_a_phone_screen_is_on_the_product() -> None:
    phone = thing("cell phone", (0.3, 0.1, 0.7, 0.9))
    found = judge_people([phone, person("face", (0.4, 0.3, 0.6, 0.5))])
    assert found["people.person"] is True  # reported as a person; the policy decides
    assert found["people.on_product"] is True


def test_a_hand_holding_the_phone_is_not_on_the_product() -> None:
    phone = thing("cell phone", (0.3, 0.1, 0.7, 0.9))
    holding = person("hand", (0.5, 0.6, 0.9, 1.0))  # overlaps the phone by a quarter
    found = judge_people([phone, person("face", (0.4, 0.3, 0.6, 0.5)), holding])
    assert found["people.on_product"] is False


def test_a_person_printed_on_a_box_on_white_is_on_the_product() -> None:
    dvd = ItemRegion((0.25, 0.1, 0.75, 0.9), area=0.5 * 0.8 * 0.96)  # a solid rectangle
    face = person("face", (0.4, 0.3, 0.55, 0.45))
    assert judge_people([face], [dvd])["people.on_product"] is True


def test_a_model_on_white_is_not_packaging() -> None:
    silhouette = ItemRegion((0.3, 0.05, 0.7, 0.98), area=0.4 * 0.93 * 0.55)
    found = judge_people([person("face", (0.45, 0.08, 0.55, 0.18)),
                          person("body", (0.3, 0.05, 0.7, 0.98))], [silhouette])
    assert found["people.on_product"] is False


def test_a_box_shot_tight_is_packaging_while_it_touches_no_edge() -> None:
    # A DVD case filling the frame with a few pixels of backdrop above it (magento lt03).
    tight = ItemRegion((0.017, 0.006, 0.992, 0.976), area=0.975 * 0.97 * 0.95)
    body = person("body", (0.44, 0.14, 0.93, 0.89))
    assert judge_people([body], [tight])["people.on_product"] is True
    touching = ItemRegion((0.017, 0.0, 0.992, 0.976), area=0.975 * 0.976 * 0.95)
    assert judge_people([body], [touching])["people.on_product"] is False


def test_a_close_up_filling_the_frame_is_not_packaging() -> None:
    torso = ItemRegion((0.0, 0.0, 1.0, 1.0), area=0.95)  # solid, but cut by every edge
    assert judge_people([person("body", (0.1, 0.0, 0.9, 1.0))], [torso])["people.on_product"] \
        is False


def test_an_unsure_screen_hides_nobody() -> None:
    screen = thing("tv", (0.0, 0.0, 1.0, 1.0), score=0.2)
    assert judge_people([screen, person("face", (0.4, 0.3, 0.6, 0.5))])["people.on_product"] \
        is False


def test_things_that_carry_no_pictures_hide_nobody() -> None:
    chair = thing("chair", (0.0, 0.0, 1.0, 1.0))
    assert judge_people([chair, person("body", (0.2, 0.2, 0.8, 0.8))])["people.on_product"] \
        is False


def test_share_inside() -> None:
    assert share_inside((0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert share_inside((0.0, 0.0, 0.5, 0.5), (0.25, 0.0, 1.0, 1.0)) == pytest.approx(0.5)
    assert share_inside((0.0, 0.0, 0.5, 0.5), (0.6, 0.6, 1.0, 1.0)) == 0.0
    assert share_inside((0.2, 0.2, 0.2, 0.5), (0.0, 0.0, 1.0, 1.0)) == 0.0  # empty


@pytest.mark.parametrize("settings", [{"inside_share": 0.0}, {"carrier_min_score": 1.5},
                                      {"package_min_solidity": 2.0},
                                      {"package_min_margin": -0.1},
                                      {"lone_part_min_score": 0.0}])
def test_unsafe_settings_fail_fast(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PeopleJudgeSettings(**settings)
