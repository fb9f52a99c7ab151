"""The listing decision with fixes: a fix is kept only when the fixed image, measured again,
passes the rules it targeted and fails none the original passed.

The technical stage (Preprocess) runs for real; the model stages are left out, so their rules
report "not evaluated" and take no part here.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Sequence
from typing import Any

import pytest
from PIL import Image

from curator.contracts.schemas import AssessResponse, ImageAssessment
from curator.core.assessment import ListingAssessor
from curator.core.measured import FixedMeasurement, MeasuredImage, fix_locally, measure_locally
from models.preprocess import Preprocessor
from rules import POLICY_DIR, load_policy_set, policy_set_from_texts
from rules.evaluate import evaluate
from rules.schema import FixRef
from tests.support import synthetic

POLICIES = load_policy_set(POLICY_DIR)


class TechnicalStages:
    """Preprocess and fixes in this process: what the Preprocess replica does."""

    def __init__(self) -> None:
        self.preprocessor = Preprocessor()
        self.files: dict[str, bytes] = {}
        self.fix_calls: list[tuple[str, tuple[str, ...]]] = []

    def measure(self, files: dict[str, bytes]) -> list[MeasuredImage]:
        self.files.update(files)
        return [measure_locally(data, image_id, self.preprocessor)
                for image_id, data in files.items()]

    async def fix(self, image_id: str, fixes: Sequence[FixRef]) -> FixedMeasurement:
        self.fix_calls.append((image_id, tuple(f.name for f in fixes)))
        fixed = fix_locally(self.files[image_id], [(f.name, dict(f.with_)) for f in fixes],
                            self.preprocessor)
        if fixed.data is None:
            return FixedMeasurement(MeasuredImage(image_id, error=fixed.error),
                                    skipped=fixed.skipped)
        measured = measure_locally(fixed.data, image_id, self.preprocessor)
        return FixedMeasurement(measured, fixed.data, fixed.applied, fixed.width, fixed.height,
                                fixed.skipped)


@pytest.fixture
def stages() -> TechnicalStages:
    return TechnicalStages()


def assess(stages: TechnicalStages, files: dict[str, bytes], category: str = "default",
           marketplace: str = "US", assessor: ListingAssessor | None = None,
           **options: Any) -> AssessResponse:
    measured = stages.measure(files)
    return asyncio.run((assessor or ListingAssessor(POLICIES)).assess(
        listing_id="l-1", category=category, marketplace=marketplace, images=measured,
        roles=[None] * len(measured), fixer=stages.fix, **options,
    ))


def by_id(response: AssessResponse) -> dict[str, ImageAssessment]:
    return {image.image_id: image for image in response.images}


def decoded(image: ImageAssessment) -> Image.Image:
    assert image.fix is not None and image.fix.image is not None
    return Image.open(io.BytesIO(base64.b64decode(image.fix.image)))


def jpeg(**options: Any) -> bytes:
    return synthetic.to_jpeg_bytes(synthetic.render_product(**options), quality=95)


def _webp_bytes(shape: synthetic.Shape = "box") -> bytes:
    buffer = io.BytesIO()
    synthetic.render_product(size=(1200, 1200), fill=0.86, shape=shape, seed=8).save(
        buffer, "WEBP", quality=95)
    return buffer.getvalue()


# Each shipped fix, on an image that needs exactly it: (files, category, marketplace, fix, rules).
FIX_CASES: dict[str, tuple[bytes, str, str, str, set[str]]] = {
    "pad-small-product": (
        jpeg(size=(2200, 2200), fill=0.5, seed=4), "default", "US", "pad_to_fill",
        {"main.fill.minimum", "main.fill.target"},
    ),
    "whiten-offwhite-backdrop": (
        jpeg(size=(1200, 1200), fill=0.86, background=(249, 249, 249), seed=5), "default", "US",
        "whiten_background", {"main.background.pure_white"},
    ),
    "trim-border": (
        synthetic.to_jpeg_bytes(synthetic.add_border(
            synthetic.render_product(size=(1200, 1200), fill=0.86, seed=6), 20, (30, 30, 30)),
            quality=95),
        "default", "US", "trim_border", {"main.frame.no_border"},
    ),
    "downscale-jewelry": (
        jpeg(size=(2600, 2600), fill=0.88, seed=7), "jewelry", "US", "downscale",
        {"main.size.jewelry_range"},
    ),
    "convert-webp": (
        _webp_bytes(), "default", "US", "convert_to_srgb_jpeg", {"image.format.not_webp"},
    ),
}


@pytest.mark.parametrize("name", FIX_CASES, ids=FIX_CASES)
def test_each_fix_resolves_its_rule_and_breaks_none(stages: TechnicalStages, name: str) -> None:
    data, category, marketplace, fix, targeted = FIX_CASES[name]
    response = assess(stages, {"only": data}, category, marketplace)
    (image,) = response.images
    policy = POLICIES.resolve(category, marketplace)
    original = evaluate(policy, image.attributes or {}, "main")
    assert {v.rule_id for v in original.violations if v.action == "fix"} == targeted
    assert image.action == "fix", image.fix
    assert image.fix is not None and image.fix.accepted, image.fix.reason
    assert fix in image.fix.applied
    assert set(image.fix.resolved) == targeted
    # Measured again from the returned bytes: the targeted rules pass, nothing new fails.
    fixed_bytes = base64.b64decode(image.fix.image or "")
    after = evaluate(policy, Preprocessor().run(fixed_bytes).attributes, "main")
    failing_after = {v.rule_id for v in after.violations}
    assert not failing_after & targeted
    assert failing_after <= {v.rule_id for v in original.violations}
    assert decoded(image).format == "JPEG"
    assert response.selection.main_image_id == "only"
    assert response.selection.main_image_compliant


def test_a_padded_image_reaches_the_fill_target(stages: TechnicalStages) -> None:
    response = assess(stages, {"small": FIX_CASES["pad-small-product"][0]})
    (image,) = response.images
    fixed = Preprocessor().run(base64.b64decode(image.fix.image or "")).attributes  # type: ignore[union-attr]
    assert image.attributes is not None and image.attributes["composition.fill_ratio"] < 0.6
    assert fixed["composition.fill_ratio"] == pytest.approx(0.85, abs=0.02)
    assert fixed["file.aspect_ratio"] == pytest.approx(1.0, abs=0.01)
    assert image.fix is not None and image.fix.verdict is not None
    assert image.fix.verdict.violations == []


def test_a_fix_that_cannot_resolve_falls_back_to_its_otherwise(stages: TechnicalStages) -> None:
    # A policy whose fill floor lies above what its own fix pads to: the fixed image still fails.
    base = (POLICY_DIR / "base.yaml").read_text().replace(
        "require: {attribute: composition.fill_ratio, op: \">=\", value: 0.65}",
        "require: {attribute: composition.fill_ratio, op: \">=\", value: 0.90}",
    )
    assessor = ListingAssessor(policy_set_from_texts({"base.yaml": base}))
    response = assess(stages, {"small": FIX_CASES["pad-small-product"][0]}, assessor=assessor)
    (image,) = response.images
    assert image.fix is not None and not image.fix.accepted
    assert image.fix.reason == (
        "the fixed image still fails main.fill.minimum: The product spans only 85% of the frame; "
        "at least 90% is required (the marketplace asks for about 85%)"
    )
    assert image.fix.rule_id == "main.fill.minimum" and image.fix.evaluated_as == "main"
    assert image.fix.image is None  # a refused fix is not offered
    assert image.action == "reject"  # main.fill.minimum: otherwise reject
    actions = {v.rule_id: v.severity for v in image.verdict.violations}  # type: ignore[union-attr]
    assert "main.fill.minimum" in actions
    assert not response.selection.main_image_compliant


FILL_ONLY = """\
policy: fill-only
rules:
  - id: main.fill.target
    description: fill
    applies_to: main
    require: {attribute: composition.fill_ratio, op: ">=", value: 0.80}
    severity: warn
    action: fix
    fix: pad_to_fill
"""


def test_a_refused_fix_falls_back(stages: TechnicalStages) -> None:
    # A product cut off by the right edge: padding would hide the cut, so pad_to_fill refuses
    # and the rule falls back to review.
    cropped = jpeg(size=(1200, 1200), fill=0.7, centre=(0.9, 0.5), seed=9)
    assessor = ListingAssessor(policy_set_from_texts({"p.yaml": FILL_ONLY}))
    response = assess(stages, {"cut": cropped}, assessor=assessor)
    (image,) = response.images
    assert image.attributes is not None and image.attributes["composition.touches_edge"]
    assert stages.fix_calls == [("cut", ("pad_to_fill",))]
    assert image.fix is not None and not image.fix.accepted
    assert image.fix.reason.startswith("could not fix: pad_to_fill: ")
    # Nothing applied: the rule in the way is the one the fix could not resolve.
    assert image.fix.rule_id == "main.fill.target"
    assert [(n.fix, n.reason.split(":")[0]) for n in image.fix.not_applied] == [
        ("pad_to_fill", "the product touches the image edge")]
    assert image.action == "review"


def test_a_crop_below_the_size_rule_is_refused_and_explained(stages: TechnicalStages) -> None:
    # 1200 px, the product spanning half of it: cropping to an 85% fill leaves about 700 px,
    # under the 1000 px zoom rule the original passed. Beside it, a well-filled 450 px photo
    # whose only problems are about the file.
    crop = jpeg(size=(1200, 1200), fill=0.5, seed=4)
    files = {"crop": crop, "small-file": jpeg(size=(450, 450), fill=0.86, seed=5)}
    response = assess(stages, files)
    assert stages.fix_calls == [("crop", ("pad_to_fill",))]
    # The refused fix leaves crop with a blocking problem in the picture: the small file wins.
    assert response.selection.main_image_id == "small-file"
    assert "crop: problems in the picture: main.fill.minimum (blocking), main.fill.target " \
        "(warning)" in response.selection.steps
    assert "(crop has more blocking problems in the picture: 1 against 0)" in (
        response.selection.reason)
    image = by_id(response)["crop"]
    assert image.action == "approve"  # as an alternate it is fine
    fix = image.fix  # ... and its answer says why it could not be the main image
    assert fix is not None and not fix.accepted and fix.image is None
    assert fix.evaluated_as == "main"
    assert fix.rule_id == "main.size.zoom"
    assert fix.reason.startswith("the fixed image would break main.size.zoom: Longest side is ")
    assert fix.width is not None and fix.width < 1000 and fix.applied == ["pad_to_fill"]
    assert fix.targeted == ["main.fill.minimum", "main.fill.target"] and fix.resolved == []
    # Alone, the same image is the main one: rejected for its fill, with the same explanation.
    (alone,) = assess(TechnicalStages(), {"crop": crop}).images
    assert alone.action == "reject" and alone.fix is not None
    assert (alone.fix.accepted, alone.fix.rule_id) == (False, "main.size.zoom")


def test_a_fix_held_back_by_another_rule_is_not_attempted_and_says_so(
    stages: TechnicalStages,
) -> None:
    # 800 px: under the zoom rule, which no fix resolves (fixes never upscale), so padding the
    # small product could not make it a compliant main image and is not tried.
    response = assess(stages, {"small": jpeg(size=(800, 800), fill=0.5, seed=16)})
    (image,) = response.images
    assert stages.fix_calls == []
    assert image.action == "review"
    assert image.fix is not None and not image.fix.accepted
    assert image.fix.rule_id == "main.size.zoom" and image.fix.evaluated_as == "main"
    assert image.fix.reason.startswith("not attempted: main.size.zoom also holds the image back")
    assert image.fix.targeted == ["main.fill.minimum", "main.fill.target"]
    assert image.fix.applied == [] and image.fix.verdict is None


WHITEN_AND_FILL = FILL_ONLY + """\
  - id: main.background.pure_white
    description: white
    applies_to: main
    require: {attribute: background.pure_white_fraction, op: ">=", value: 0.90}
    severity: warn
    action: fix
    fix: whiten_background
"""


def test_a_fix_that_could_not_apply_beside_one_that_did_is_named(
    stages: TechnicalStages,
) -> None:
    # Off-white and cut off at the right edge: whitening applies, padding refuses, so the fixed
    # image still fails the fill rule, and the answer says why padding did nothing.
    cut = jpeg(size=(1200, 1200), fill=0.7, centre=(0.9, 0.5), background=(249, 249, 249),
               seed=9)
    assessor = ListingAssessor(policy_set_from_texts({"p.yaml": WHITEN_AND_FILL}))
    (image,) = assess(stages, {"cut": cut}, assessor=assessor).images
    fix = image.fix
    assert fix is not None and not fix.accepted
    assert fix.applied == ["whiten_background"]
    assert fix.rule_id == "main.fill.target"
    assert fix.reason.startswith("the fixed image still fails main.fill.target: ")
    assert [n.fix for n in fix.not_applied] == ["pad_to_fill"]
    assert "touches the image edge" in fix.not_applied[0].reason


def test_fixable_ranks_between_compliant_and_failing(stages: TechnicalStages) -> None:
    files = {
        "grey": jpeg(size=(1200, 1200), fill=0.86, background=(200, 200, 200), seed=10),
        "small": FIX_CASES["pad-small-product"][0],
    }
    response = assess(stages, files)
    assert response.selection.main_image_id == "small"
    assert by_id(response)["small"].action == "fix"
    assert response.selection.order == ["small", "grey"]
    assert "fixable" in response.selection.steps[0]
    files["clean"] = jpeg(size=(1200, 1200), fill=0.86, seed=11)
    response = assess(stages, files)
    assert response.selection.main_image_id == "clean"
    assert response.selection.order == ["clean", "small", "grey"]


def test_fixes_are_not_returned_when_not_asked(stages: TechnicalStages) -> None:
    response = assess(stages, {"small": FIX_CASES["pad-small-product"][0]},
                      include_fixed_images=False)
    (image,) = response.images
    assert image.fix is not None and image.fix.accepted and image.fix.image is None


def test_near_duplicates_are_dropped_and_explained(stages: TechnicalStages) -> None:
    photo = synthetic.render_product(size=(1200, 1200), fill=0.86, seed=12)
    files = {
        "original": synthetic.to_jpeg_bytes(photo, quality=95),
        "recompressed": synthetic.to_jpeg_bytes(photo.resize((1100, 1100)), quality=70),
        "other": jpeg(size=(1200, 1200), fill=0.86, shape="bottle", seed=13),
    }
    response = assess(stages, files)
    duplicates = response.selection.duplicates
    assert len(duplicates) == 1
    (dropped, kept), = duplicates.items()
    assert {dropped, kept} == {"original", "recompressed"}
    assert by_id(response)[dropped].duplicate_of == kept
    assert dropped not in response.selection.order and "other" in response.selection.order
    assert any(step.startswith(f"{dropped} dropped: a near-duplicate of {kept}")
               for step in response.selection.steps)


def test_alternates_are_fixed_as_alternates(stages: TechnicalStages) -> None:
    # Different shapes: not near-duplicates of each other.
    files = {"clean": jpeg(size=(1200, 1200), fill=0.86, seed=14), "webp": _webp_bytes("disc")}
    response = assess(stages, files)
    images = by_id(response)
    assert response.selection.main_image_id == "clean"
    webp = images["webp"]
    assert webp.verdict is not None and webp.verdict.evaluated_as == "alternate"
    assert webp.action == "fix"
    assert webp.fix is not None and webp.fix.accepted
    assert webp.fix.resolved == ["image.format.not_webp"]


def test_without_a_fixer_fix_rules_fall_back() -> None:
    stages = TechnicalStages()
    measured = stages.measure({"small": FIX_CASES["pad-small-product"][0]})
    response = asyncio.run(ListingAssessor(POLICIES).assess(
        listing_id="l", category="default", marketplace="US", images=measured, roles=[None]))
    (image,) = response.images
    assert image.action == "reject"
    assert image.fix is not None and image.fix.reason == "fixes are not applied on this path"


def test_response_names_the_policy_that_decided(stages: TechnicalStages) -> None:
    response = assess(stages, {"a": jpeg(size=(1200, 1600), fill=0.86, seed=15)},
                      category="apparel", marketplace="UK")
    policy = POLICIES.resolve("apparel", "UK")
    assert response.policy_id == "base+uk+apparel+apparel-uk"
    assert response.policy_version == policy.version
    assert response.policy_set_version == POLICIES.version
