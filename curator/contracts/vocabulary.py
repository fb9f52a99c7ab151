"""The attribute vocabulary: the contract between Detection and Rules.

Every attribute a detector produces, and every attribute a rule may name, is declared here once,
with its type, unit and range. Detectors must produce exactly these names (tests check it), and the
policy loader rejects a rule that names anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from curator.contracts.registry import Registry

AttributeValue = bool | int | float | str | None
AttributeKind = Literal["bool", "int", "float", "str"]


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: AttributeKind
    unit: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    # Set when the attribute may be absent (e.g. `file.dpi` when the file records none).
    nullable: bool = False
    # The stage that produces it: rules can only use attributes of stages the graph runs.
    stage: Literal["preprocess", "extractor", "scorer"] = "preprocess"


_ATTRIBUTES: Registry[Attribute] = Registry("attribute")


def _register(*attributes: Attribute) -> None:
    for attribute in attributes:
        _ATTRIBUTES.add(attribute.name, attribute)


_register(
    # file.* — what the file itself says, before any pixel analysis.
    Attribute("file.format", "str", "-", "Container format: JPEG, PNG, WEBP, TIFF or GIF"),
    Attribute("file.bytes", "int", "bytes", "Size of the uploaded file", minimum=0),
    Attribute("file.width", "int", "px", "Width after EXIF orientation", minimum=1),
    Attribute("file.height", "int", "px", "Height after EXIF orientation", minimum=1),
    Attribute("file.longest_side", "int", "px", "max(width, height)", minimum=1),
    Attribute("file.aspect_ratio", "float", "width/height", "Width divided by height", minimum=0),
    Attribute(
        "file.color_mode", "str", "-", "Pillow mode of the file before conversion (RGB, CMYK, L…)"
    ),
    Attribute("file.animated", "bool", "-", "More than one frame (only the first is assessed)"),
    Attribute(
        "file.dpi", "float", "dots/inch", "Horizontal DPI recorded in the file", nullable=True
    ),
    # background.* — measured on the background region only (connected to the image edges).
    Attribute(
        "background.white_fraction",
        "float",
        "fraction",
        "Share of background pixels that are near-white (every channel >= 245, or >= 220 on one"
        " softly shaded light neutral backdrop whose median is >= 240); of the outer ring when no"
        " background separates from the product (busy photo)",
        0,
        1,
    ),
    Attribute(
        "background.pure_white_fraction",
        "float",
        "fraction",
        "Share of background pixels that are exactly RGB 255,255,255",
        0,
        1,
    ),
    Attribute(
        "background.transparent", "bool", "-",
        "The file leaves the backdrop transparent (at least 1% of the frame)",
    ),
    Attribute("background.is_white", "bool", "-",
              "white_fraction >= 0.95, or on a close-up filling the frame the slivers of "
              "backdrop blown out to pure white; and the backdrop is not transparent"),
    # composition.* — the product mask is everything that is not background.
    Attribute(
        "composition.fill_ratio",
        "float",
        "fraction",
        "Product bounding box over frame, linear: max(box_w/width, box_h/height)",
        0,
        1,
    ),
    Attribute(
        "composition.fill_area", "float", "fraction", "Product pixels over frame pixels", 0, 1
    ),
    Attribute(
        "composition.touches_edge", "bool", "-",
        "Product mask reaches an image edge (cropped); a soft shadow running off the frame does"
        " not count",
    ),
    Attribute(
        "composition.touches_sides", "bool", "-",
        "Product mask reaches the left or right image edge (a close-up, not a model cut off at"
        " the head or feet)",
    ),
    Attribute("composition.item_count", "int", "items", "Separate objects on the background", 0),
    # ... and what the extractor makes of them once text and everyday objects are known
    # (models/detectors/items.py).
    Attribute(
        "composition.items", "int", "items",
        "Items shown: separated objects less text blocks, logos and fragments, or distinct"
        " everyday objects (COCO) when those are more", 0, stage="extractor",
    ),
    Attribute(
        "composition.collage", "bool", "-",
        "A straight seam crosses the whole frame between two pictured panels (collage, grid)",
        stage="extractor",
    ),
    Attribute(
        "composition.multiple_items", "bool", "-",
        "More than one item, or a collage: props, several units, several views",
        stage="extractor",
    ),
    Attribute(
        "composition.centre_offset",
        "float",
        "fraction of frame",
        "Distance of the product box centre from the frame centre, in frame units",
        0,
        1,
    ),
    Attribute("frame.border", "bool", "-", "A uniform non-white frame or line along an edge"),
    # exposure.* and sharpness.* — measured on the product, not the white background.
    Attribute("exposure.mean", "float", "0..1 luma", "Mean luma of the product", 0, 1),
    Attribute(
        "exposure.clipped_dark", "float", "fraction", "Product pixels with luma <= 5", 0, 1
    ),
    Attribute(
        "exposure.clipped_bright", "float", "fraction", "Product pixels with luma >= 250", 0, 1
    ),
    Attribute("exposure.contrast", "float", "0..1 luma", "Std of the product's luma", 0, 1),
    Attribute(
        "sharpness.laplacian_var",
        "float",
        "grey levels²",
        "Variance of the 3x3 Laplacian over the product (its mask grown 3 px, in its box), with"
        " the box resized to a fixed 512 px longest side",
        0,
    ),
    Attribute(
        "sharpness.score", "float", "0..1", "laplacian_var / (laplacian_var + 100)", 0, 1
    ),
    Attribute("color.grayscale", "bool", "-", "No colour, also grey stored as RGB"),
    Attribute("hash.md5", "str", "hex", "MD5 of the decoded RGB pixels and their shape"),
    Attribute("hash.phash", "str", "hex (64 bit)", "DCT perceptual hash, for near-duplicates"),
    # text.* — the PP-OCR text detector (extractor stage), on the whole frame.
    Attribute("text.box_count", "int", "boxes", "Text regions found", 0, stage="extractor"),
    Attribute(
        "text.area_fraction", "float", "fraction", "Frame area covered by text boxes", 0, 1,
        stage="extractor",
    ),
    Attribute(
        "text.overlay",
        "bool",
        "-",
        "Text lying on the background (added graphics, badges, watermarks), not print on the "
        "product",
        stage="extractor",
    ),
    Attribute(
        "text.overlay_area_fraction", "float", "fraction",
        "Frame area covered by overlay text boxes", 0, 1, stage="extractor",
    ),
    # people.* — judged from the person boxes of every detector (models/detectors/people.py);
    # nudity from the NudeNet detector (models/detectors/nudity.py).
    Attribute(
        "people.person", "bool", "-",
        "A person is visible: a face, a body from any side, a hand, a person on the product "
        "(a face or hand with no body in the picture from score 0.85)",
        stage="extractor",
    ),
    Attribute("people.face_count", "int", "faces", "Faces detected", 0, stage="extractor"),
    Attribute("people.hand_count", "int", "hands", "Hands detected", 0, stage="extractor"),
    Attribute("people.body_count", "int", "bodies", "Bodies detected", 0, stage="extractor"),
    Attribute(
        "people.on_product", "bool", "-",
        "Every person seen is printed on or shown by the product (a screen, a cover)",
        stage="extractor",
    ),
    Attribute(
        "people.nudity", "bool", "-", "An explicit (exposed) class is detected",
        stage="extractor",
    ),
    Attribute(
        "people.nudity_score", "float", "0..1", "Highest score among the explicit classes", 0, 1,
        stage="extractor",
    ),
    # quality.technical — BRISQUE on the product region (scorer stage).
    Attribute(
        "quality.technical", "float", "BRISQUE points",
        "BRISQUE no-reference score of the product region (lower is better; ~0..100)",
        stage="scorer",
    ),
    # quality.* — the ranking score used by selection.
    Attribute("quality.score", "float", "0..1", "Quality used to rank images (scorer card)", 0, 1),
    Attribute("quality.scorer", "str", "-", "Scorer card that produced quality.score"),
)

VOCABULARY: dict[str, Attribute] = _ATTRIBUTES.in_order()


def get(name: str) -> Attribute:
    """The attribute named `name`; KeyError with close matches when unknown."""
    try:
        return VOCABULARY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, VOCABULARY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown attribute {name!r}{hint}") from None


def check_value(name: str, value: AttributeValue) -> None:
    """Raise ValueError when `value` is not of the declared kind or out of range."""
    attribute = get(name)
    if value is None:
        if not attribute.nullable:
            raise ValueError(f"{name} must not be null")
        return
    expected: dict[str, tuple[type, ...]] = {
        "bool": (bool,),
        "int": (int,),
        "float": (int, float),
        "str": (str,),
    }
    ok_types = expected[attribute.kind]
    if not isinstance(value, ok_types) or (attribute.kind != "bool" and isinstance(value, bool)):
        raise ValueError(f"{name} must be {attribute.kind}, got {type(value).__name__}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if attribute.minimum is not None and value < attribute.minimum:
            raise ValueError(f"{name}={value} below minimum {attribute.minimum}")
        if attribute.maximum is not None and value > attribute.maximum:
            raise ValueError(f"{name}={value} above maximum {attribute.maximum}")
