"""Build the dev set's "magento" part from a fetched mirror of magento/magento2-sample-data.

Usage: python benchmarks/devset/tools/collect_magento.py <mirror git dir> [--devset DIR]
       [--skeleton CSV]

Reads the product photos at the pinned commit straight from the git objects (no work tree
needed), writes each one downscaled so the longer side is at most 1000 px (JPEG quality 85) to
`<devset>/images/magento/`, and writes the few derived images (thumbnails, outlines, side-by-side
views, collages, promo templates) that cover cases the sample data lacks. `--skeleton` writes the
metadata columns of the labels CSV (image, group, category, source, licence, original_size) with
the six labels left empty: the labels themselves are set by looking at each image, by hand.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = "magento/magento2-sample-data"
COMMIT = "53807565ba9f23c9409268c02bb995cf39ef553d"
LICENCE = "OSL-3.0"  # pub/media/LICENSE.txt: the media folder is under OSL 3.0
PART = "magento"
MAX_SIDE_PX = 1000
JPEG_QUALITY = 85
WHITE = (255, 255, 255)

# One group per SKU: (group id, category, photo file names). A few groups deliberately leave out
# the front view, as a listing without a compliant main image would.
SELECTION: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("MP05", "apparel", ("mp05-black_main", "mp05-blue_back", "mp05-blue_main",
                         "mp05-blue_outfit", "mp05-green_main")),
    ("MP06", "apparel", ("mp06-gray_back", "mp06-gray_main", "mp06-gray_outfit",
                         "mp06-orange_main")),
    ("MP07", "apparel", ("mp07-blue_alt1", "mp07-blue_back", "mp07-blue_main",
                         "mp07-blue_side_a", "mp07-blue_side_b", "mp07-purple_main")),
    ("MT02", "apparel", ("mt02-gray_main", "mt02-white_alt1", "mt02-white_back",
                         "mt02-white_main", "mt02-white_sideb")),
    ("WH08", "apparel", ("wh08-orange_main", "wh08-white_alt1", "wh08-white_alternate",
                         "wh08-white_back", "wh08-white_main")),
    ("WJ04", "apparel", ("wj04-red_main", "wj04-white_alt1", "wj04-white_alternate",
                         "wj04-white_back", "wj04-white_main")),
    ("WJ08", "apparel", ("wj08-gray_alt1", "wj08-gray_alternate", "wj08-gray_back")),
    ("MH05", "apparel", ("mh05-green_main", "mh05-white_alt1", "mh05-white_back",
                         "mh05-white_main")),
    ("MJ02", "apparel", ("mj02-green_alt1", "mj02-green_back", "mj02-green_main",
                         "mj02-orange_main")),
    ("MSH03", "apparel", ("msh03-black_main", "msh03-blue_alt1", "msh03-blue_back",
                          "msh03-blue_main")),
    ("WP06", "apparel", ("wp06-black_alt1", "wp06-black_back", "wp06-black_main",
                         "wp06-black_outfit")),
    ("WP09", "apparel", ("wp09-black_alt1", "wp09-black_back", "wp09-black_main",
                         "wp09-black_outfit")),
    ("WS05", "apparel", ("ws05-black_alt1", "ws05-black_back", "ws05-black_main",
                         "ws05-orange_main")),
    ("WSH03", "apparel", ("wsh03-blue_main", "wsh03-gray_alt1", "wsh03-gray_back",
                          "wsh03-gray_main")),
    ("WT05", "apparel", ("wt05-purple_alt1", "wt05-purple_back", "wt05-purple_main",
                         "wt05-white_main")),
    ("WB02", "apparel", ("wb02-blue_alt1", "wb02-blue_back", "wb02-blue_main",
                         "wb02-orange_main")),
    ("WB04", "apparel", ("wb04-blue_alt1", "wb04-blue_back")),
    # Gear: bags, watches, fitness kit and yoga DVDs, one packshot (sometimes two) per SKU.
    ("24-MB02", "default", ("mb02-blue-0", "mb02-gray-0")),
    ("24-MB04", "default", ("mb04-black-0", "mb04-black-0_alt1")),
    ("24-MB06", "default", ("mb06-gray-0",)),
    ("24-MB05", "default", ()),
    ("24-UB02", "default", ("ub02-black-0",)),
    ("24-WB02", "default", ("wb02-green-0",)),
    ("24-WB05", "default", ("wb05-red-0",)),
    ("24-WB06", "default", ("wb06-red-0", "wb06-red-0_alt1")),
    ("24-WB07", "default", ("wb07-brown-0",)),
    ("24-MG01", "jewelry", ("mg01-bk-0",)),
    ("24-MG02", "jewelry", ("mg02-bk-0",)),
    ("24-MG03", "jewelry", ("mg03-br-0",)),
    ("24-WG03", "jewelry", ("wg03-gr-0", "wg03-sa-0")),
    ("24-WG09", "jewelry", ("wg09-gr-0",)),
    ("24-UG01", "sports", ("ug01-bk-0",)),
    ("24-UG03", "sports", ("ug03-bk-0",)),
    ("24-UG05", "sports", ("ug05-gr-0",)),
    ("24-UG06", "sports", ("ug06-lb-0",)),
    ("24-FOAM-ROLLER", "sports", ("luma-foam-roller",)),
    ("24-YOGA-BRICK", "sports", ("luma-yoga-brick",)),
    ("24-LT03", "default", ("lt03",)),
    ("24-LT04", "default", ("lt04",)),
    ("24-LT06", "default", ("lt06",)),
)


def source_path(stem: str) -> str:
    """The sample data files photos by the first two letters of their name."""
    return f"pub/media/catalog/product/{stem[0]}/{stem[1]}/{stem}.jpg"


def read_photo(mirror: Path, stem: str) -> Image.Image:
    blob = subprocess.run(
        ["git", f"--git-dir={mirror}", "show", f"{COMMIT}:{source_path(stem)}"],
        check=True, capture_output=True,
    ).stdout
    return Image.open(io.BytesIO(blob)).convert("RGB")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


# --- derived images: each covers a case LABELS.md wants and the sample data lacks ---------------

def thumbnail(photos: Sequence[Image.Image], side: int = 240) -> Image.Image:
    small = photos[0].copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    return small


def thin_outline(photos: Sequence[Image.Image], width: int = 3,
                 colour: tuple[int, int, int] = (150, 150, 150)) -> Image.Image:
    framed = photos[0].copy()
    draw = ImageDraw.Draw(framed)
    w, h = framed.size
    draw.rectangle((0, 0, w - 1, h - 1), outline=colour, width=width)
    return framed


def side_by_side(photos: Sequence[Image.Image]) -> Image.Image:
    """Two or more views or colours of one product on one white canvas, as sellers often do."""
    height = min(p.height for p in photos)
    scaled = [p.resize((round(p.width * height / p.height), height)) for p in photos]
    canvas = Image.new("RGB", (sum(p.width for p in scaled), height), WHITE)
    x = 0
    for p in scaled:
        canvas.paste(p, (x, 0))
        x += p.width
    return canvas


def collage_2x2(photos: Sequence[Image.Image]) -> Image.Image:
    """Four photos in a grid, each cell the size of the first photo at half scale, no gutter."""
    cell_w, cell_h = photos[0].width // 2, photos[0].height // 2
    canvas = Image.new("RGB", (cell_w * 2, cell_h * 2), WHITE)
    for index, photo in enumerate(photos[:4]):
        canvas.paste(photo.resize((cell_w, cell_h)), ((index % 2) * cell_w, (index // 2) * cell_h))
    return canvas


def on_colour(photo: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """The packshot's edge-connected white backdrop replaced by a flat colour."""
    cut = photo.copy()
    w, h = cut.size
    for seed in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if cut.getpixel(seed) != colour:
            ImageDraw.floodfill(cut, seed, colour, thresh=40)
    return cut


def promo_template(photos: Sequence[Image.Image], colour: tuple[int, int, int],
                   headline: str, price: str) -> Image.Image:
    """A seller's promo tile: the product on a coloured backdrop, a headline and a price badge."""
    tile = on_colour(photos[0], colour)
    draw = ImageDraw.Draw(tile)
    w, h = tile.size
    draw.text((w * 0.06, h * 0.04), headline, fill=WHITE, font=font(round(h * 0.07)))
    r = round(w * 0.13)
    cx, cy = round(w * 0.82), round(h * 0.86)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(230, 40, 40))
    draw.text((cx, cy), price, fill=WHITE, font=font(round(r * 0.55)), anchor="mm")
    return tile


def sale_corner(photos: Sequence[Image.Image], text: str = "SALE -30%") -> Image.Image:
    """A white packshot with a red sale ribbon added in the top-left corner."""
    tagged = photos[0].copy()
    draw = ImageDraw.Draw(tagged)
    w, h = tagged.size
    size = round(h * 0.05)
    draw.rectangle((0, round(h * 0.03), round(w * 0.42), round(h * 0.03) + size * 2),
                   fill=(220, 30, 30))
    draw.text((round(w * 0.03), round(h * 0.03) + size // 2), text, fill=WHITE, font=font(size))
    return tagged


@dataclass(frozen=True)
class Derived:
    name: str  # file stem written under images/magento/
    group: str
    category: str
    sources: tuple[str, ...]
    make: Callable[[Sequence[Image.Image]], Image.Image]
    how: str  # for the notes column


DERIVED: tuple[Derived, ...] = (
    Derived("mb02-blue-gray__side_by_side", "24-MB02", "default", ("mb02-blue-0", "mb02-gray-0"),
            side_by_side, "side-by-side of the blue and gray colours"),
    Derived("mb04-black-0__thumb240", "24-MB04", "default", ("mb04-black-0",),
            thumbnail, "240 px thumbnail"),
    Derived("mb06-gray-0__outline3", "24-MB06", "default", ("mb06-gray-0",),
            thin_outline, "3 px grey outline drawn along the edges"),
    Derived("mb05-black-0__promo", "24-MB05", "default", ("mb05-black-0",),
            lambda p: promo_template(p, (30, 90, 160), "BACK TO SCHOOL", "$45"),
            "promo template: backdrop recoloured blue, headline and price badge added"),
    Derived("mb05-black-0__sale", "24-MB05", "default", ("mb05-black-0",),
            sale_corner, "red 'SALE -30%' ribbon added in the corner"),
    Derived("mg02-bk-0__promo", "24-MG02", "jewelry", ("mg02-bk-0",),
            lambda p: promo_template(p, (240, 140, 30), "NEW IN", "$92"),
            "promo template: backdrop recoloured orange, headline and price badge added"),
    Derived("mg03-br-0__sale", "24-MG03", "jewelry", ("mg03-br-0",),
            sale_corner, "red 'SALE -30%' ribbon added in the corner"),
    Derived("ub02-black-0__thumb200", "24-UB02", "default", ("ub02-black-0",),
            lambda p: thumbnail(p, 200), "200 px thumbnail"),
    Derived("ug05-gr-0__outline2", "24-UG05", "sports", ("ug05-gr-0",),
            lambda p: thin_outline(p, 2, (200, 200, 200)),
            "2 px light-grey outline drawn along the edges"),
    Derived("wg03-gr-sa__side_by_side", "24-WG03", "jewelry", ("wg03-gr-0", "wg03-sa-0"),
            side_by_side, "side-by-side of the two colours"),
    Derived("wg09-gr-0__outline3", "24-WG09", "jewelry", ("wg09-gr-0",),
            lambda p: thin_outline(p, 3, (40, 40, 40)), "3 px dark outline drawn along the edges"),
    Derived("foam-roller__promo", "24-FOAM-ROLLER", "sports", ("luma-foam-roller",),
            lambda p: promo_template(p, (40, 150, 90), "RECOVER FASTER", "$19"),
            "promo template: backdrop recoloured green, headline and price badge added"),
    Derived("wh08-white__collage", "WH08", "apparel",
            ("wh08-white_main", "wh08-white_back", "wh08-white_alt1", "wh08-white_alternate"),
            collage_2x2, "2x2 collage of the main, back, alt1 and alternate views"),
    Derived("mp06__colours_side_by_side", "MP06", "apparel",
            ("mp06-gray_main", "mp06-green_main", "mp06-orange_main"),
            side_by_side, "side-by-side of the gray, green and orange colours"),
    Derived("wt05-white_main__thumb240", "WT05", "apparel", ("wt05-white_main",),
            thumbnail, "240 px thumbnail"),
)


def save(image: Image.Image, path: Path) -> None:
    """Downscale to the dev set's limit (smaller images are kept as they are) and write JPEG."""
    if max(image.size) > MAX_SIDE_PX:
        image = image.copy()
        image.thumbnail((MAX_SIDE_PX, MAX_SIDE_PX), Image.Resampling.LANCZOS)
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def collect(mirror: Path, devset: Path) -> list[dict[str, str]]:
    """Write every image of the part; return the metadata rows of the labels CSV."""
    out = devset / "images" / PART
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []

    def row(stem: str, group: str, category: str, source: str, size: tuple[int, int],
            notes: str = "") -> dict[str, str]:
        return {"image": f"{PART}/{stem}.jpg", "group": f"{PART}:{group}", "category": category,
                "source": f"{REPO}:{source_path(source)}", "licence": LICENCE,
                "original_size": f"{size[0]}x{size[1]}", "notes": notes}

    for group, category, stems in SELECTION:
        for stem in stems:
            photo = read_photo(mirror, stem)
            save(photo, out / f"{stem}.jpg")
            rows.append(row(stem, group, category, stem, photo.size))
    for item in DERIVED:
        made = item.make([read_photo(mirror, s) for s in item.sources])
        save(made, out / f"{item.name}.jpg")
        of = ", ".join(f"{s}.jpg" for s in item.sources)
        rows.append(row(item.name, item.group, item.category, item.sources[0], made.size,
                        f"derived: {item.how} of {of}"))
    return rows


LABEL_COLUMNS = ("white_background", "overlay_text", "person", "multiple_items", "border",
                 "main_image_compliant")
HEADER = ("image", "group", "category", "source", "licence", "original_size", *LABEL_COLUMNS,
          "notes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mirror", type=Path, help="git dir of the fetched magento2-sample-data")
    parser.add_argument("--devset", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--skeleton", type=Path, help="write the metadata columns here")
    args = parser.parse_args(argv)
    rows = collect(args.mirror, args.devset)
    if args.skeleton:
        with args.skeleton.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=HEADER, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    print(f"wrote {len(rows)} images to {args.devset / 'images' / PART}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
