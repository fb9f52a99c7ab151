"""Build the dev set's "extra" part: real photos for the labels and categories the set is thin on.

Usage: python benchmarks/devset/tools/collect_extra.py <mirror root> [--devset DIR]
       [--skeleton CSV]

`<mirror root>` holds one bare git directory per source at `<owner>+<name>/repo` (what the
`fetch` tool writes under /work/.mirror). Every photo is read from the git objects at a pinned
commit, so the output does not depend on where the mirror's HEAD has moved since. Photos whose
longer side exceeds MAX_SIDE_PX are downscaled (Lanczos) and written as JPEG quality 85; smaller
JPEG originals are copied byte for byte; opaque PNGs become JPEG.

The sources have almost no bordered pictures and few with added text, so this part also DERIVES
a few images from its own photos (outlines, bands, frames, decorative shapes, badges, a watermark,
a price callout, a promo card). `--skeleton` writes the labels CSV's metadata columns with the
six labels empty: labels are set afterwards by looking at every image.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fonts import bold_font  # this folder is on sys.path when the script runs
from PIL import Image, ImageDraw

PART = "extra"
MAX_SIDE_PX = 800  # inside the dev set's 1000 px limit; keeps the part well under its budget
JPEG_QUALITY = 85
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Source:
    repo: str
    commit: str
    licence: str  # SPDX id of the repository's licence
    root: str  # folder inside the repository that holds the photos


SOURCES: dict[str, Source] = {
    # Online Boutique's catalogue photos at HEAD (Unsplash / pxhere photos shipped in the repo).
    "boutique": Source("GoogleCloudPlatform/microservices-demo",
                       "34ffea9175946982c3088ed84994fe6019ad6e92", "Apache-2.0",
                       "src/frontend/static/img/products"),
    # The earlier catalogue (vintage cameras, record player, ...), last present in the parent of
    # d2c729d, which replaced it; the commit is on the main history.
    "boutique-old": Source("GoogleCloudPlatform/microservices-demo",
                           "f362d2b2a1ba24d16e479dad9fd7098fa05b35eb", "Apache-2.0",
                           "src/frontend/static/img/products"),
    # WooCommerce Blocks' pattern placeholder photos (stock photos shipped in the plugin).
    "wooblocks": Source("woocommerce/woocommerce-blocks",
                        "03c7cfacb225be345ab30240ef483476c080bae8", "GPL-3.0-or-later",
                        "images/pattern-placeholders"),
}


@dataclass(frozen=True)
class Pick:
    source: str
    path: str  # relative to the source's root
    name: str  # output file stem inside images/extra/
    group: str
    category: str


def _pick(source: str, path: str, group: str, category: str, name: str = "") -> Pick:
    stem = name or f"{source.split('-')[0]}-{Path(path).stem}"
    return Pick(source, path, stem, f"{source.split('-')[0]}:{group}", category)


PICKS: list[Pick] = [
    _pick("boutique", "bamboo-glass-jar.jpg", "bamboo-glass-jar", "home"),
    _pick("boutique", "candle-holder.jpg", "candle-holder", "home"),
    _pick("boutique", "hairdryer.jpg", "hairdryer", "electronics"),
    _pick("boutique", "loafers.jpg", "loafers", "shoes"),
    _pick("boutique", "mug.jpg", "mug", "home"),
    _pick("boutique", "salt-and-pepper-shakers.jpg", "salt-and-pepper-shakers", "home"),
    _pick("boutique", "sunglasses.jpg", "sunglasses", "default"),
    _pick("boutique", "tank-top.jpg", "tank-top", "apparel"),
    _pick("boutique", "watch.jpg", "watch", "jewelry"),
    _pick("boutique-old", "air-plant.jpg", "air-plant", "home"),
    _pick("boutique-old", "barista-kit.jpg", "barista-kit", "home"),
    _pick("boutique-old", "camera-lens.jpg", "folding-camera", "collectibles",
          "boutique-folding-camera"),
    _pick("boutique-old", "camp-mug.jpg", "camp-mug", "home"),
    _pick("boutique-old", "city-bike.jpg", "city-bike", "sports"),
    _pick("boutique-old", "film-camera.jpg", "rolleiflex", "collectibles", "boutique-rolleiflex"),
    _pick("boutique-old", "record-player.jpg", "record-player", "electronics"),
    _pick("boutique-old", "terrarium.jpg", "terrarium", "home"),
    _pick("boutique-old", "typewriter.jpg", "typewriter", "collectibles"),
    _pick("wooblocks", "leather-guitar-typewriter-red-gadget-sofa.png", "red-typewriter",
          "collectibles", "wooblocks-red-typewriter"),
    _pick("wooblocks", "music-technology-play-equipment-studio-gadget.png", "headphones",
          "electronics", "wooblocks-headphones"),
    _pick("wooblocks", "man-person-music-black-and-white-white-photography.jpg", "headphones",
          "electronics", "wooblocks-headphones-worn"),
    _pick("wooblocks", "technology-joystick-gadget-console-games-playstation.png", "gamepad",
          "electronics", "wooblocks-gamepads"),
    _pick("wooblocks", "technology-white-camera-photography-vintage-photographer.png",
          "zenit-camera", "collectibles", "wooblocks-zenit-camera"),
    _pick("wooblocks", "watch-hand-brand-jewellery-strap-platinum.jpg", "tlr-camera",
          "collectibles", "wooblocks-tlr-camera"),
    _pick("wooblocks", "music-needle-turntable-black-and-white-white-photography.jpg",
          "turntable", "electronics", "wooblocks-turntable"),
    _pick("wooblocks", "pattern-fashion-clothing-outerwear-wool-scarf.png", "knit-sweater",
          "apparel", "wooblocks-knit-sweater"),
    _pick("wooblocks", "man-person-winter-photography-statue-coat.png", "winter-coat",
          "apparel", "wooblocks-winter-coat-back"),
    _pick("wooblocks", "table-wood-chair-floor-living-room-furniture-vertical.png",
          "armchair", "home", "wooblocks-armchair"),
    _pick("wooblocks", "white-vase-decoration-pattern-ceramic-lamp.jpg", "ribbed-vases",
          "home", "wooblocks-ribbed-vases"),
    _pick("wooblocks", "drinkware-liquid-tableware-dishware-bottle-fluid.jpg", "milk-bottle",
          "home", "wooblocks-milk-bottle"),
    _pick("wooblocks", "tea-leaf-meal-food-herb-produce.jpg", "tea-infuser", "home",
          "wooblocks-tea-infuser"),
]


def _read_blob(mirror_root: Path, source: Source, path: str) -> bytes:
    git_dir = mirror_root / source.repo.replace("/", "+") / "repo"
    spec = f"{source.commit}:{source.root}/{path}"
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", spec],
                          check=True, capture_output=True).stdout


def _opaque_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; the WooCommerce PNGs' last row and column are half transparent (a resize
    artefact), and they are cropped off rather than flattened into a white edge line."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        opaque_box = rgba.getchannel("A").point(lambda a: 255 if a >= 250 else 0).getbbox()
        if opaque_box:
            rgba = rgba.crop(opaque_box)
        canvas = Image.new("RGBA", rgba.size, (*WHITE, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def _downscaled(image: Image.Image) -> Image.Image:
    if max(image.size) <= MAX_SIDE_PX:
        return image
    scale = MAX_SIDE_PX / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def _write_photo(data: bytes, out: Path) -> Image.Image:
    """Write one source photo (see module doc); returns the written image for derivations."""
    image = Image.open(io.BytesIO(data))
    if image.format == "JPEG" and max(image.size) <= MAX_SIDE_PX:
        out.write_bytes(data)
        return _opaque_rgb(image)
    written = _downscaled(_opaque_rgb(image))
    written.save(out, "JPEG", quality=JPEG_QUALITY)
    return written


# --- derived images -------------------------------------------------------------------------

def outline(width: int, colour: tuple[int, int, int]) -> Callable[[Image.Image], Image.Image]:
    """A solid line of `width` px drawn over the picture's outermost pixels."""
    def apply(photo: Image.Image) -> Image.Image:
        framed = photo.copy()
        ImageDraw.Draw(framed).rectangle([0, 0, framed.width - 1, framed.height - 1],
                                         outline=colour, width=width)
        return framed
    return apply


def band(width: int, colour: tuple[int, int, int]) -> Callable[[Image.Image], Image.Image]:
    """The picture padded by a thick coloured band on every side."""
    def apply(photo: Image.Image) -> Image.Image:
        framed = Image.new("RGB", (photo.width + 2 * width, photo.height + 2 * width), colour)
        framed.paste(photo, (width, width))
        return framed
    return apply


def double_line(photo: Image.Image) -> Image.Image:
    """A thin dark outer line and a second line a few pixels inside it, like a mount."""
    framed = photo.copy()
    draw = ImageDraw.Draw(framed)
    w, h = framed.size
    draw.rectangle([0, 0, w - 1, h - 1], outline=(40, 40, 40), width=3)
    draw.rectangle([10, 10, w - 11, h - 11], outline=(40, 40, 40), width=2)
    return framed


def rounded_card(photo: Image.Image) -> Image.Image:
    """The photo inside a rounded rectangle on a coral card."""
    side = max(photo.size)
    margin = side // 10
    card = Image.new("RGB", (side + 2 * margin, side + 2 * margin), (236, 120, 100))
    inner = photo.resize((side, side), Image.Resampling.LANCZOS)
    mask = Image.new("L", inner.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, side - 1, side - 1], radius=side // 8, fill=255)
    card.paste(inner, (margin, margin), mask)
    return card


def hexagon_card(photo: Image.Image) -> Image.Image:
    """The photo cut to a hexagon on a navy card."""
    side = max(photo.size)
    card = Image.new("RGB", (side, side), (28, 42, 84))
    mask = Image.new("L", (side, side), 0)
    r, c = side * 0.47, side / 2
    points = [(c + r * dx, c + r * dy) for dx, dy in
              ((0, -1), (0.866, -0.5), (0.866, 0.5), (0, 1), (-0.866, 0.5), (-0.866, -0.5))]
    ImageDraw.Draw(mask).polygon(points, fill=255)
    card.paste(photo.resize((side, side), Image.Resampling.LANCZOS), (0, 0), mask)
    return card


def frame_with_badge(photo: Image.Image) -> Image.Image:
    """An 8 px black frame and a red "NEW" roundel in the top-left corner."""
    framed = outline(8, (15, 15, 15))(photo)
    draw = ImageDraw.Draw(framed)
    radius = framed.width // 10
    centre = (24 + radius, 24 + radius)
    draw.ellipse([24, 24, 24 + 2 * radius, 24 + 2 * radius], fill=(210, 30, 40))
    draw.text(centre, "NEW", font=bold_font(radius * 2 // 3), fill=WHITE, anchor="mm")
    return framed


def outline_with_logo(photo: Image.Image) -> Image.Image:
    """A 6 px orange brand outline and a small shop name in the bottom-right corner."""
    framed = outline(6, (240, 120, 20))(photo)
    draw = ImageDraw.Draw(framed)
    draw.text((framed.width - 20, framed.height - 20), "curio&co",
              font=bold_font(framed.width // 18), fill=(240, 120, 20), anchor="rd")
    return framed


def watermark(photo: Image.Image) -> Image.Image:
    """A large semi-transparent diagonal watermark across the middle."""
    base = photo.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text((base.width // 2, base.height // 2), "© PHOTO STUDIO",
                               font=bold_font(base.width // 11), fill=(120, 120, 120, 110),
                               anchor="mm")
    layer = layer.rotate(30, resample=Image.Resampling.BICUBIC, center=(base.width // 2,
                                                                         base.height // 2))
    base.alpha_composite(layer)
    return base.convert("RGB")


def price_callout(photo: Image.Image) -> Image.Image:
    """A yellow price callout with a pointer, placed at the right edge."""
    tagged = photo.copy()
    draw = ImageDraw.Draw(tagged)
    w, h = tagged.size
    box = [int(w * 0.62), int(h * 0.08), int(w * 0.95), int(h * 0.22)]
    draw.rounded_rectangle(box, radius=12, fill=(255, 214, 0))
    draw.polygon([(box[0] + 20, box[3]), (box[0] + 50, box[3]), (box[0] - 10, box[3] + 40)],
                 fill=(255, 214, 0))
    draw.text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), "$19.99",
              font=bold_font(int(h * 0.08)), fill=(20, 20, 20), anchor="mm")
    return tagged


def promo_card(photo: Image.Image) -> Image.Image:
    """A promo card: the photo on a mustard card with a headline and a discount line under it."""
    side = 600
    card = Image.new("RGB", (side + 80, side + 220), (222, 170, 40))
    card.paste(photo.resize((side, side), Image.Resampling.LANCZOS), (40, 40))
    draw = ImageDraw.Draw(card)
    draw.text((40, side + 70), "VINTAGE CAMERAS", font=bold_font(44), fill=(30, 30, 30))
    draw.text((40, side + 130), "up to -30% this week", font=bold_font(34), fill=WHITE)
    return card


def polaroid_caption(photo: Image.Image) -> Image.Image:
    """A polaroid-like off-white frame with a thick bottom strip carrying a caption."""
    margin, bottom = 36, 140
    frame = Image.new("RGB", (photo.width + 2 * margin, photo.height + margin + bottom),
                      (232, 228, 218))
    frame.paste(photo, (margin, margin))
    ImageDraw.Draw(frame).text((frame.width // 2, photo.height + margin + bottom // 2),
                               "Since 1950", font=bold_font(48), fill=(60, 50, 40), anchor="mm")
    return frame


@dataclass(frozen=True)
class Derived:
    of: str  # output stem of the source photo (a Pick.name)
    name: str
    operation: str  # words for the notes column
    make: Callable[[Image.Image], Image.Image]


DERIVED: list[Derived] = [
    Derived("boutique-watch", "boutique-watch-outline", "4 px dark grey outline",
            outline(4, (70, 70, 70))),
    Derived("boutique-sunglasses", "boutique-sunglasses-teal-band", "40 px teal band",
            band(40, (0, 128, 128))),
    Derived("boutique-hairdryer", "boutique-hairdryer-rounded-card",
            "rounded-rectangle crop on a coral card", rounded_card),
    Derived("boutique-candle-holder", "boutique-candle-holder-hexagon",
            "hexagon crop on a navy card", hexagon_card),
    Derived("boutique-loafers", "boutique-loafers-double-line", "double line frame",
            double_line),
    Derived("boutique-mug", "boutique-mug-brand-outline",
            "6 px orange outline and shop name", outline_with_logo),
    Derived("boutique-salt-and-pepper-shakers", "boutique-shakers-thin-outline",
            "3 px light grey outline", outline(3, (200, 200, 200))),
    Derived("boutique-bamboo-glass-jar", "boutique-jar-frame-new-badge",
            "8 px black frame and NEW badge", frame_with_badge),
    Derived("boutique-rolleiflex", "boutique-rolleiflex-watermark", "diagonal watermark",
            watermark),
    Derived("boutique-tank-top", "boutique-tank-top-price", "price callout", price_callout),
    Derived("boutique-folding-camera", "boutique-folding-camera-promo",
            "promo card with headline and discount", promo_card),
    Derived("boutique-typewriter", "boutique-typewriter-polaroid",
            "polaroid frame with caption", polaroid_caption),
]

HEADER = ["image", "group", "category", "source", "licence", "original_size",
          "white_background", "overlay_text", "person", "multiple_items", "border",
          "main_image_compliant", "notes"]


def collect(mirror_root: Path, devset: Path) -> list[dict[str, str]]:
    out_dir = devset / "images" / PART
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    written: dict[str, tuple[Image.Image, dict[str, str]]] = {}
    for pick in PICKS:
        source = SOURCES[pick.source]
        data = _read_blob(mirror_root, source, pick.path)
        original = Image.open(io.BytesIO(data))
        out = out_dir / f"{pick.name}.jpg"
        image = _write_photo(data, out)
        row = {"image": f"{PART}/{out.name}", "group": pick.group, "category": pick.category,
               "source": f"{source.repo}:{source.root}/{pick.path}", "licence": source.licence,
               "original_size": f"{original.width}x{original.height}", "notes": ""}
        rows.append(row)
        written[pick.name] = (image, row)
    for derived in DERIVED:
        photo, parent = written[derived.of]
        out = out_dir / f"{derived.name}.jpg"
        _downscaled(derived.make(photo)).save(out, "JPEG", quality=JPEG_QUALITY)
        rows.append({**parent, "image": f"{PART}/{out.name}",
                     "notes": f"derived: {derived.operation} of {parent['image']}"})
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror_root", type=Path)
    parser.add_argument("--devset", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--skeleton", type=Path, help="write the CSV metadata, labels empty")
    args = parser.parse_args(argv)
    rows = collect(args.mirror_root, args.devset)
    if args.skeleton:
        with args.skeleton.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HEADER, restval="")
            writer.writeheader()
            writer.writerows(rows)
    print(f"{len(rows)} images written to {args.devset / 'images' / PART}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
