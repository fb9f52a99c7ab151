"""Build the dev set's "shops" part from fetched mirrors of other open-source shops' demo data.

Usage: python benchmarks/devset/tools/collect_shops.py <mirror root> [--devset DIR]
       [--skeleton CSV]

`<mirror root>` holds one bare git directory per source at `<owner>+<name>/repo` (what the
`fetch` tool writes under /work/.mirror). Each photo is read at its pinned commit straight from
the git objects, so no work tree is needed and the result is the same whatever the mirror's HEAD
has moved on to. Photos whose longer side exceeds MAX_SIDE_PX are downscaled (Lanczos) and
written as JPEG quality 85; smaller JPEG/PNG originals are copied byte for byte; transparent
PNGs stay PNG because the transparency is what makes their background "not white".

A few DERIVED images cover cases the sources lack (flattened onto white, thumbnails, thin
outlines, decorative frames, collages, promo templates with text); each is built here from one
of the selected source photos. `--skeleton` writes the metadata columns of the labels CSV with
the six labels left empty: the labels are set by looking at each image, by hand.
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

PART = "shops"
MAX_SIDE_PX = 800  # within the dev set's 1000 px limit; keeps the part under its 12 MB budget
JPEG_QUALITY = 85
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Source:
    repo: str
    commit: str
    licence: str  # SPDX id of the repository's licence at that commit
    root: str  # folder inside the repository that holds the photos


SOURCES: dict[str, Source] = {
    "spree": Source("spree/spree", "cee28a23d9965d3c873955f2a567212450e4b335",
                    "BSD-3-Clause", "docs/images/demo-images"),
    # The older Spree sample data (Rails/Spree merchandise), still on the main history.
    "spreeold": Source("spree/spree", "d3927a3f646f0b4e72b137bf72606c885ec59829",
                       "BSD-3-Clause", "sample/db/samples/images"),
    "sylius": Source("Sylius/Sylius", "3466cbab1098367b7107e756714f9390bf5e4bf6",
                     "MIT", "src/Sylius/Bundle/CoreBundle/Resources/fixtures"),
    # Vendure's mock-data photos are Unsplash photos (named after their photographers).
    "vendure": Source("vendure-ecommerce/vendure", "1633446f4ee203e5e3fbca628bee952893bffa5b",
                      "GPL-3.0-or-later", "packages/core/mock-data/assets"),
    "bagisto": Source("bagisto/bagisto", "889a7c6bd7200867d528f6ddc2668798e7db05d8",
                      "MIT", "packages/Webkul"),
    "saleor": Source("saleor/saleor", "723cd4eba87dfc72822ade45dc08a3caa548428d",
                     "BSD-3-Clause", "saleor/static/placeholders"),
    "solidus": Source("solidusio/solidus", "1f5bf5c638f5fe9fbda4d480bdb7ebcfa39a9a5e",
                      "BSD-3-Clause", "sample/db/samples/images"),
}

_BAGISTO_SEED = "Installer/src/Resources/assets/images/seeders"
_BAGISTO_E2E = "Admin/tests/e2e-pw/data/images"


@dataclass(frozen=True)
class Pick:
    source: str
    path: str  # relative to the source's root
    name: str  # output file stem inside images/shops/
    group: str
    category: str


def _picks(source: str, group: str, category: str, *items: tuple[str, str]) -> list[Pick]:
    return [Pick(source, path, name, group, category) for path, name in items]


def _bagisto(product: int, group_category: str, *views: int) -> list[Pick]:
    return _picks("bagisto", f"bagisto:product-{product}", group_category,
                  *((f"{_BAGISTO_SEED}/products/{product}/{v}.webp", f"bagisto-p{product}-{v}")
                    for v in views))


def _single(source: str, path: str, name: str, category: str) -> list[Pick]:
    stem = Path(path).stem
    return _picks(source, f"{source}:{stem}", category, (path, name))


SELECTION: list[Pick] = [
    # --- Spree, older sample data: small white-background packshots, front and back views.
    *_picks("spreeold", "spree:ror_baseball", "apparel",
            ("ror_baseball.jpeg", "spree-ror-baseball"),
            ("ror_baseball_back.jpeg", "spree-ror-baseball-back")),
    *_picks("spreeold", "spree:ror_baseball_jersey", "apparel",
            ("ror_baseball_jersey_blue.png", "spree-ror-jersey-blue"),
            ("ror_baseball_jersey_red.png", "spree-ror-jersey-red"),
            ("ror_baseball_jersey_back_green.png", "spree-ror-jersey-back-green")),
    *_picks("spreeold", "spree:ror_ringer", "apparel",
            ("ror_ringer.jpeg", "spree-ror-ringer"),
            ("ror_ringer_back.jpeg", "spree-ror-ringer-back")),
    *_picks("spreeold", "spree:ror_mug", "home",
            ("ror_mug.jpeg", "spree-ror-mug"),
            ("ror_mug_back.jpeg", "spree-ror-mug-back")),
    *_picks("spreeold", "spree:ror_stein", "home",
            ("ror_stein.jpeg", "spree-ror-stein"),
            ("ror_stein_back.jpeg", "spree-ror-stein-back")),
    *_picks("spreeold", "spree:ror_tote", "default",
            ("ror_tote.jpeg", "spree-ror-tote"),
            ("ror_tote_back.jpeg", "spree-ror-tote-back")),
    *_picks("spreeold", "spree:spree_jersey", "apparel",
            ("spree_jersey.jpeg", "spree-spree-jersey"),
            ("spree_jersey_back.jpeg", "spree-spree-jersey-back")),
    *_picks("spreeold", "spree:spree_mug", "home",
            ("spree_mug.jpeg", "spree-spree-mug"),
            ("spree_mug_back.jpeg", "spree-spree-mug-back")),
    *_picks("spreeold", "spree:spree_tote", "default",
            ("spree_tote_front.jpeg", "spree-spree-tote-front"),
            ("spree_tote_back.jpeg", "spree-spree-tote-back")),
    *_picks("spreeold", "spree:spree_bag", "default",
            ("spree_bag.jpeg", "spree-spree-bag")),
    # --- Spree, current demo images: appliances on a warm beige studio backdrop.
    *_picks("spree", "spree:2-slice-toaster", "home",
            ("2-slice-toaster.webp", "spree-toaster"),
            ("2-slice-toaster-black.webp", "spree-toaster-black"),
            ("2-slice-toaster-white.webp", "spree-toaster-white")),
    *_picks("spree", "spree:ceramic-hair-straightener", "electronics",
            ("ceramic-hair-straightener.webp", "spree-straightener"),
            ("ceramic-hair-straightener-rose-gold.webp", "spree-straightener-rose-gold")),
    *_picks("spree", "spree:beard-trimmer-7000", "electronics",
            ("beard-trimmer-7000.webp", "spree-trimmer"),
            ("beard-trimmer-7000-black.webp", "spree-trimmer-black")),
    # --- Sylius fixtures: lifestyle photos of models (each photo its own product).
    *_single("sylius", "caps/cap_01.jpg", "sylius-cap-01", "apparel"),
    *_single("sylius", "caps/cap_03.jpg", "sylius-cap-03", "apparel"),
    *_single("sylius", "dresses/dress_01.jpg", "sylius-dress-01", "apparel"),
    *_single("sylius", "dresses/dress_02.jpg", "sylius-dress-02", "apparel"),
    *_single("sylius", "t-shirts/woman/t-shirt_01.jpg", "sylius-woman-tshirt-01", "apparel"),
    *_single("sylius", "t-shirts/man/t-shirt_01.jpg", "sylius-man-tshirt-01", "apparel"),
    *_single("sylius", "jeans/man/jeans_02.jpg", "sylius-man-jeans-02", "apparel"),
    *_single("sylius", "mugs.jpg", "sylius-mugs", "home"),
    *_single("sylius", "stickers.jpg", "sylius-stickers", "collectibles"),
    *_single("sylius", "t-shirts.jpg", "sylius-tshirts", "apparel"),
    *_single("sylius", "books.jpg", "sylius-books", "default"),
    # --- Vendure mock data: single studio and lifestyle photos.
    *_single("vendure", "imani-clovis-234736-unsplash.jpg", "vendure-sneaker-white", "shoes"),
    *_single("vendure", "nikolai-chernichenko-1299748-unsplash.jpg", "vendure-sneaker-grey",
             "shoes"),
    *_single("vendure", "xavier-teo-469050-unsplash.jpg", "vendure-sneakers-concrete", "shoes"),
    *_single("vendure", "mitch-lensink-256007-unsplash.jpg", "vendure-sneakers-wood", "shoes"),
    *_single("vendure", "thomas-q-1229169-unsplash.jpg", "vendure-ethernet-cable",
             "electronics"),
    *_single("vendure", "adam-birkett-239153-unsplash.jpg", "vendure-usb-cable", "electronics"),
    *_single("vendure", "oscar-ivan-esquivel-arteaga-687447-unsplash.jpg", "vendure-mouse",
             "electronics"),
    *_single("vendure", "vincent-botta-736919-unsplash.jpg", "vendure-hard-drive",
             "electronics"),
    *_single("vendure", "jonathan-talbert-697262-unsplash.jpg", "vendure-camera-vintage",
             "electronics"),
    *_single("vendure", "eniko-kis-663725-unsplash.jpg", "vendure-instant-camera",
             "electronics"),
    *_single("vendure", "zoltan-tasi-423051-unsplash.jpg", "vendure-camera-tripod",
             "electronics"),
    *_single("vendure", "derick-david-409858-unsplash.jpg", "vendure-laptop-dark",
             "electronics"),
    *_single("vendure", "kelly-sikkema-685291-unsplash.jpg", "vendure-tablet-pencil",
             "electronics"),
    *_single("vendure", "daniel-korpai-1302051-unsplash.jpg", "vendure-desk-setup",
             "electronics"),
    *_single("vendure", "alex-rodriguez-santibanez-200278-unsplash.jpg",
             "vendure-hanging-plant", "home"),
    *_single("vendure", "charles-deluvio-695736-unsplash.jpg", "vendure-cactus", "home"),
    *_single("vendure", "annie-spratt-78044-unsplash.jpg", "vendure-succulents", "home"),
    *_single("vendure", "ruslan-bardash-351288-unsplash.jpg", "vendure-stool", "home"),
    *_single("vendure", "stoica-ionela-530966-unsplash.jpg", "vendure-jump-rope", "sports"),
    *_single("vendure", "neonbrand-428982-unsplash.jpg", "vendure-boxing-gloves", "sports"),
    *_single("vendure", "mikkel-bech-748940-unsplash.jpg", "vendure-road-bike", "sports"),
    # --- Bagisto seed and test data: generated model shots on grey, scenes, promo banners.
    *_picks("bagisto", "bagisto:e2e-puffer-jacket", "apparel",
            (f"{_BAGISTO_E2E}/10.webp", "bagisto-jacket-yellow"),
            (f"{_BAGISTO_E2E}/11.webp", "bagisto-jacket-green-side"),
            (f"{_BAGISTO_E2E}/12.webp", "bagisto-jacket-green"),
            (f"{_BAGISTO_E2E}/6.webp", "bagisto-jacket-colours"),
            (f"{_BAGISTO_E2E}/9.webp", "bagisto-jacket-yellow-crop")),
    *_picks("bagisto", "bagisto:e2e-beanie", "apparel",
            (f"{_BAGISTO_E2E}/1.webp", "bagisto-beanie")),
    *_picks("bagisto", "bagisto:e2e-winter-set", "apparel",
            (f"{_BAGISTO_E2E}/5.webp", "bagisto-winter-flatlay")),
    *_bagisto(101, "apparel", 1, 2, 3),
    *_bagisto(129, "apparel", 1, 2),
    *_bagisto(188, "kids_apparel", 1, 2, 3),
    *_bagisto(216, "kids_apparel", 1, 2, 3),
    *_bagisto(18, "shoes", 1, 2),
    *_bagisto(29, "shoes", 1, 2),
    *_bagisto(293, "default", 1, 2),
    *_bagisto(412, "default", 1, 2),
    *_bagisto(414, "default", 1, 2),
    *_bagisto(425, "electronics", 1, 2),
    *_bagisto(429, "electronics", 1, 2),
    *_bagisto(43, "apparel", 1, 2),
    *_bagisto(88, "default", 1),
    *_picks("bagisto", "bagisto:slider-earbuds", "electronics",
            (f"{_BAGISTO_SEED}/theme/sliders/en/5.webp", "bagisto-slider-earbuds")),
    *_picks("bagisto", "bagisto:slider-power-bank", "electronics",
            (f"{_BAGISTO_SEED}/theme/sliders/en/6.webp", "bagisto-slider-power-bank")),
    *_picks("bagisto", "bagisto:static-headphones", "electronics",
            (f"{_BAGISTO_SEED}/theme/static/en/1.webp", "bagisto-headphones-stand")),
    *_picks("bagisto", "bagisto:static-speaker", "electronics",
            (f"{_BAGISTO_SEED}/theme/static/en/10.webp", "bagisto-speaker")),
    *_picks("bagisto", "bagisto:static-chain", "jewelry",
            (f"{_BAGISTO_SEED}/theme/static/en/8.webp", "bagisto-chain-model")),
    # --- Saleor placeholders: transparent PNG packshots with a soft shadow.
    *_picks("saleor", "saleor:blue-plimsolls", "shoes",
            ("saleor-blue-plimsolls-1.png", "saleor-plimsolls-side"),
            ("saleor-blue-plimsolls-2.png", "saleor-plimsolls-top"),
            ("saleor-blue-plimsolls-3.png", "saleor-plimsolls-heels"),
            ("saleor-blue-plimsolls-4.png", "saleor-plimsolls-pair")),
    *_picks("saleor", "saleor:sunnies", "default",
            ("saleor-sunnies.png", "saleor-sunnies")),
    *_picks("saleor", "saleor:apple-drink", "default",
            ("saleor-apple-drink.png", "saleor-apple-drink")),
    *_picks("saleor", "saleor:white-parrot-cushion", "home",
            ("saleor-white-parrot-cushion.png", "saleor-parrot-cushion")),
    # --- Solidus sample images: transparent PNG mock-ups, some with hands or a model.
    *_picks("solidus", "solidus:cap-black", "apparel",
            ("solidus_cap_black_1.png", "solidus-cap-black-front"),
            ("solidus_cap_black_2.png", "solidus-cap-black-side"),
            ("solidus_cap_black_3.png", "solidus-cap-black-back")),
    *_picks("solidus", "solidus:hoodie-red", "apparel",
            ("solidus_hoodie_red_1.png", "solidus-hoodie-red"),
            ("solidus_hoodie_red_2.png", "solidus-hoodie-red-model")),
    *_picks("solidus", "solidus:notebook", "default",
            ("solidus_notebook.png", "solidus-notebook-hand")),
    *_picks("solidus", "solidus:tote", "default",
            ("solidus_tote.png", "solidus-tote-carried")),
    *_picks("solidus", "solidus:mug-set", "home",
            ("solidus_mug_set.png", "solidus-mug-set")),
]


# ----------------------------------------------------------------------------- reading sources

class Mirrors:
    """Reads files at pinned commits from the bare mirrors under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, source: str, path: str) -> bytes:
        src = SOURCES[source]
        git_dir = self.root / f"{src.repo.replace('/', '+')}" / "repo"
        spec = f"{src.commit}:{src.root}/{path}"
        done = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "blob", spec],
                              capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"cannot read {src.repo} {spec}: {done.stderr.decode().strip()}")
        return done.stdout


def has_transparency(image: Image.Image) -> bool:
    """True when a visible share of the picture is see-through, not just a few edge pixels."""
    if image.mode not in ("RGBA", "LA") and not (image.mode == "P"
                                                 and "transparency" in image.info):
        return False
    alpha = image.convert("RGBA").getchannel("A")
    see_through = alpha.point(lambda a: 255 if a < 128 else 0).histogram()[255]
    return see_through > 0.005 * image.width * image.height


def downscaled(image: Image.Image, max_side: int = MAX_SIDE_PX) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def write_photo(data: bytes, out_stem: Path) -> tuple[Path, Image.Image]:
    """Writes one source photo into the layout; returns its path and the opened original."""
    original = Image.open(io.BytesIO(data))
    original.load()
    transparent = has_transparency(original)
    small_enough = max(original.size) <= MAX_SIDE_PX
    if small_enough and original.format in ("JPEG", "PNG"):
        out = out_stem.with_suffix(".png" if original.format == "PNG" else ".jpg")
        out.write_bytes(data)
    elif transparent:
        out = out_stem.with_suffix(".png")
        downscaled(original.convert("RGBA")).save(out, optimize=True)
    else:
        out = out_stem.with_suffix(".jpg")
        downscaled(original.convert("RGB")).save(out, quality=JPEG_QUALITY)
    return out, original


# ----------------------------------------------------------------------------- derived images

def on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*WHITE, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def thumbnail(image: Image.Image, side: int) -> Image.Image:
    return downscaled(on_white(image), side)


def thin_outline(image: Image.Image, width: int, colour: tuple[int, int, int]) -> Image.Image:
    framed = on_white(image)
    ImageDraw.Draw(framed).rectangle((0, 0, framed.width - 1, framed.height - 1),
                                     outline=colour, width=width)
    return framed


def rounded_frame(image: Image.Image, margin_colour: tuple[int, int, int]) -> Image.Image:
    """The photo inside a rounded rectangle on a coloured card, as shop templates do."""
    photo = on_white(image)
    margin = max(photo.size) // 12
    card = Image.new("RGB", (photo.width + 2 * margin, photo.height + 2 * margin), margin_colour)
    mask = Image.new("L", photo.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, photo.width - 1, photo.height - 1),
                                           radius=max(photo.size) // 10, fill=255)
    card.paste(photo, (margin, margin), mask)
    return card


def grid(images: list[Image.Image], columns: int, cell: int) -> Image.Image:
    """Tiles the views side by side on white, each scaled to fit a square cell."""
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell, rows * cell), WHITE)
    for i, image in enumerate(images):
        tile = on_white(image)
        tile.thumbnail((cell, cell), Image.Resampling.LANCZOS)
        x = (i % columns) * cell + (cell - tile.width) // 2
        y = (i // columns) * cell + (cell - tile.height) // 2
        sheet.paste(tile, (x, y))
    return sheet


def promo_card(image: Image.Image, background: tuple[int, int, int], headline: str,
               badge: str) -> Image.Image:
    """A square promo template: product on a coloured card, a headline and a price badge."""
    side = 800
    card = Image.new("RGB", (side, side), background)
    product = image.convert("RGBA")
    product.thumbnail((int(side * 0.62), int(side * 0.62)), Image.Resampling.LANCZOS)
    card.paste(product, ((side - product.width) // 2, side - product.height - 40), product)
    draw = ImageDraw.Draw(card)
    draw.text((40, 36), headline, font=bold_font(64), fill=WHITE)
    draw.ellipse((side - 230, 30, side - 30, 230), fill=(230, 40, 60))
    draw.text((side - 130, 130), badge, font=bold_font(52), fill=WHITE, anchor="mm")
    return card


def corner_price(image: Image.Image, price: str) -> Image.Image:
    tagged = on_white(image)
    draw = ImageDraw.Draw(tagged)
    font = bold_font(max(14, tagged.width // 12))
    box = draw.textbbox((0, 0), price, font=font)
    pad = tagged.width // 40
    x, y = tagged.width - (box[2] - box[0]) - 3 * pad, 2 * pad
    draw.rectangle((x - pad, y - pad, x + box[2] - box[0] + pad, y + box[3] + pad),
                   fill=(250, 200, 0))
    draw.text((x, y), price, font=font, fill=(20, 20, 20))
    return tagged


def watermark(image: Image.Image, text: str) -> Image.Image:
    base = on_white(image).convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = bold_font(base.width // 7)
    draw.text((base.width // 2, base.height // 2), text, font=font, fill=(120, 120, 120, 110),
              anchor="mm")
    layer = layer.rotate(30, resample=Image.Resampling.BICUBIC)
    return Image.alpha_composite(base, layer).convert("RGB")


@dataclass(frozen=True)
class Derived:
    name: str
    group: str
    category: str
    inputs: tuple[str, ...]  # output stems of selected photos it is built from
    operation: str  # goes into the notes column
    build: Callable[[list[Image.Image]], Image.Image]


DERIVED: list[Derived] = [
    Derived("derived-saleor-plimsolls-side-white", "saleor:blue-plimsolls", "shoes",
            ("saleor-plimsolls-side",), "transparency flattened onto white",
            lambda ims: downscaled(on_white(ims[0]))),
    Derived("derived-saleor-plimsolls-views", "saleor:blue-plimsolls", "shoes",
            ("saleor-plimsolls-side", "saleor-plimsolls-top", "saleor-plimsolls-heels"),
            "three views side by side on white", lambda ims: grid(ims, 3, 300)),
    Derived("derived-solidus-cap-black-white", "solidus:cap-black", "apparel",
            ("solidus-cap-black-side",), "transparency flattened onto white",
            lambda ims: downscaled(on_white(ims[0]))),
    Derived("derived-solidus-hoodie-red-white", "solidus:hoodie-red", "apparel",
            ("solidus-hoodie-red",), "transparency flattened onto white",
            lambda ims: downscaled(on_white(ims[0]))),
    Derived("derived-vendure-sneaker-thumb", "vendure:imani-clovis-234736-unsplash", "shoes",
            ("vendure-sneaker-white",), "200 px thumbnail", lambda ims: thumbnail(ims[0], 200)),
    Derived("derived-spree-ror-stein-thumb", "spree:ror_stein", "home",
            ("spree-ror-stein-back",), "120 px thumbnail", lambda ims: thumbnail(ims[0], 120)),
    Derived("derived-spree-jersey-outline", "spree:spree_jersey", "apparel",
            ("spree-spree-jersey",), "3 px grey outline along the edges",
            lambda ims: thin_outline(ims[0], 3, (150, 150, 150))),
    Derived("derived-bagisto-book-outline", "bagisto:product-293", "default",
            ("bagisto-p293-1",), "2 px light grey outline along the edges",
            lambda ims: thin_outline(ims[0], 2, (200, 200, 200))),
    Derived("derived-spree-ror-tote-frame", "spree:ror_tote", "default",
            ("spree-ror-tote",), "rounded-rectangle frame on a teal card",
            lambda ims: rounded_frame(ims[0], (0, 128, 128))),
    Derived("derived-spree-toaster-variants", "spree:2-slice-toaster", "home",
            ("spree-toaster", "spree-toaster-black", "spree-toaster-white"),
            "the three colour variants side by side", lambda ims: grid(ims, 3, 330)),
    Derived("derived-saleor-apple-drink-promo", "saleor:apple-drink", "default",
            ("saleor-apple-drink",), "promo template: orange card, headline and price badge",
            lambda ims: promo_card(ims[0], (240, 130, 30), "FRESH DEAL", "-20%")),
    Derived("derived-spree-ror-baseball-price", "spree:ror_baseball", "apparel",
            ("spree-ror-baseball",), "price tag added in the top right corner",
            lambda ims: corner_price(ims[0], "$19.99")),
    Derived("derived-spree-bag-watermark", "spree:spree_bag", "default",
            ("spree-spree-bag",), "semi-transparent diagonal watermark",
            lambda ims: watermark(ims[0], "SAMPLE")),
]


# ----------------------------------------------------------------------------- main

SKELETON_HEADER = ["image", "group", "category", "source", "licence", "original_size",
                   "white_background", "overlay_text", "person", "multiple_items", "border",
                   "main_image_compliant", "notes"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mirror_root", type=Path)
    parser.add_argument("--devset", type=Path,
                        default=Path(__file__).resolve().parents[1])
    parser.add_argument("--skeleton", type=Path, help="write the labels CSV's metadata columns")
    args = parser.parse_args(argv)

    mirrors = Mirrors(args.mirror_root)
    out_dir = args.devset / "images" / PART
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    originals: dict[str, Image.Image] = {}
    written: dict[str, str] = {}  # output stem -> path relative to images/
    for pick in SELECTION:
        out, original = write_photo(mirrors.read(pick.source, pick.path), out_dir / pick.name)
        originals[pick.name] = original
        written[pick.name] = f"{PART}/{out.name}"
        src = SOURCES[pick.source]
        rows.append([f"{PART}/{out.name}", pick.group, pick.category,
                     f"{src.repo}:{src.root}/{pick.path}", src.licence,
                     f"{original.width}x{original.height}"] + [""] * 6 + [""])
    for d in DERIVED:
        image = d.build([downscaled(originals[name]) for name in d.inputs])
        out = out_dir / f"{d.name}.jpg"
        downscaled(image.convert("RGB")).save(out, quality=JPEG_QUALITY)
        first = next(p for p in SELECTION if p.name == d.inputs[0])
        src, original = SOURCES[first.source], originals[first.name]
        rows.append([f"{PART}/{out.name}", d.group, d.category,
                     f"{src.repo}:{src.root}/{first.path}", src.licence,
                     f"{original.width}x{original.height}"] + [""] * 6
                    + [f"derived: {d.operation} of {', '.join(written[n] for n in d.inputs)}"])
    if args.skeleton:
        with args.skeleton.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(SKELETON_HEADER)
            writer.writerows(rows)
    print(f"wrote {len(SELECTION)} photos and {len(DERIVED)} derived images to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
