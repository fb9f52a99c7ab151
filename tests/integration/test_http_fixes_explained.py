"""Over real HTTP, a listing with no compliant image: the selection ranks by distance to
compliant and says why, and a fix that was tried and refused comes back explained."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from tests.models.detectors.text_scenes import overlay_scene
from tests.support import synthetic

pytestmark = pytest.mark.integration


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jpeg(**kwargs: Any) -> bytes:
    return synthetic.to_jpeg_bytes(synthetic.render_product(**kwargs), quality=95)


def test_no_compliant_image_ranks_by_distance_and_explains_the_refused_fix(
    service_url: str,
) -> None:
    images = {
        # 1200 px, product across half of it: padding crops to about 700 px, under the 1000 px
        # zoom rule the original passed, so the fix is refused and the fill problem stays.
        "crop": jpeg(size=(1200, 1200), fill=0.5, seed=4),
        # Well filled but a 450 px file: only problems with the file.
        "small-file": jpeg(size=(450, 450), fill=0.86, seed=5),
        # Text stamped on the background: a blocking problem in the picture.
        "promo": synthetic.to_jpeg_bytes(overlay_scene(0).image),
    }
    body = {"listing_id": "L-fixes", "category": "home", "marketplace": "US",
            "images": [{"image_id": name, "data": b64(data)} for name, data in images.items()]}
    answer = requests.post(f"{service_url}/v1/assess", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    response = answer.json()
    by_id = {image["image_id"]: image for image in response["images"]}
    assert all(image["status"] == "ok" for image in by_id.values())

    selection = response["selection"]
    assert selection["main_image_id"] == "small-file"
    # crop and promo both have one blocking problem and one warning in the picture: quality
    # orders them, so only the main image's place is asserted.
    assert selection["order"][0] == "small-file"
    assert sorted(selection["order"]) == ["crop", "promo", "small-file"]
    assert selection["main_image_compliant"] is False
    steps = selection["steps"]
    assert steps[0].startswith("ranked small-file (for review, ")
    assert "by how close each comes to a compliant main image" in steps[0]
    small_step = next(step for step in steps if step.startswith("small-file: "))
    assert small_step.startswith("small-file: no problem in the picture; problems with the file: ")
    assert "image.size.minimum (warning)" in small_step
    crop_step = next(step for step in steps if step.startswith("crop: "))
    assert "main.fill.minimum (blocking)" in crop_step
    promo_step = next(step for step in steps if step.startswith("promo: "))
    assert "main.text.no_overlay (blocking)" in promo_step
    assert "the closest to compliant, with no problem in the picture" in selection["reason"]

    crop = by_id["crop"]
    assert crop["verdict"]["evaluated_as"] == "alternate"
    fix = crop["fix"]
    assert fix["accepted"] is False
    assert fix["evaluated_as"] == "main"
    assert fix["rule_id"] == "main.size.zoom"
    assert fix["reason"].startswith("the fixed image would break main.size.zoom: Longest side is")
    assert fix["targeted"] == ["main.fill.minimum", "main.fill.target"]
    assert fix["applied"] == ["pad_to_fill"] and fix["resolved"] == []
    assert fix.get("image") is None and fix["width"] < 1000
    assert "main.size.zoom" in {v["rule_id"] for v in fix["verdict"]["violations"]}
