"""Reference BRISQUE scores from the `brisque` 0.2.0 package, for the parity test of our port.

    .venv/bin/python tools/brisque_reference.py [--venv /tmp/brisque-ref-venv]

1. With the project virtualenv: render every recipe below with tests/support/synthetic.py (a product
   scene, then blur / Gaussian noise / JPEG steps) and write the pixels as PNG files.
2. Build a separate, throwaway virtualenv with numpy<2 and brisque==0.2.0 (its scoring code fails
   under numpy 2; libsvm-official compiles with gcc if no wheel fits). It needs no project code:
   a small script there reads the PNGs and scores each WHOLE image with the package, recording its
   36 features too.
3. Write tests/models/data/brisque_reference.json: per entry the recipe, the pixels' shape and
   md5 (so the test knows it regenerated the same pixels) and the reference features and score.

Scoring whole images on both sides keeps the crop convention out of the comparison; the
product-region path is tested separately (tests/models/test_scorer.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.support import synthetic

logger = logging.getLogger("brisque_reference")

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "models" / "data" / "brisque_reference.json"
DEFAULT_VENV = Path("/tmp/brisque-ref-venv")
REFERENCE_REQUIREMENTS = (
    "brisque==0.2.0",
    "numpy<2",
    "scipy<1.15",  # brisque imports scipy.ndimage.filters
    "scikit-image<0.25",  # the last releases that support numpy 1.x
    "opencv-python-headless<4.12",  # 4.12+ wheels want numpy 2
    "libsvm-official>=3.32",
    "pillow",
)

# Scenes: keyword arguments of synthetic.render_product; sizes (width, height) differ and some are
# odd so the half-scale rounding is exercised.
SCENES: dict[str, dict[str, Any]] = {
    "white-box": {"size": [400, 400], "fill": 0.85},
    "white-bottle-tight": {"size": [301, 401], "fill": 0.97, "shape": "bottle", "seed": 3},
    "studio-bottle": {"size": [360, 480], "background": "studio", "shape": "bottle", "seed": 1},
    "offwhite-disc": {"size": [417, 333], "background": "offwhite", "shape": "disc", "seed": 2},
    "busy-box": {"size": [480, 320], "background": "busy", "fill": 0.6, "seed": 4},
}
# Distortion chains, applied in order.
DISTORTIONS: dict[str, list[dict[str, Any]]] = {
    "clean": [],
    "blur-1.5": [{"kind": "blur", "radius": 1.5}],
    "blur-4": [{"kind": "blur", "radius": 4.0}],
    "noise-8": [{"kind": "noise", "sigma": 8.0, "seed": 11}],
    "noise-25": [{"kind": "noise", "sigma": 25.0, "seed": 12}],
    "jpeg-30": [{"kind": "jpeg", "quality": 30}],
    "jpeg-8": [{"kind": "jpeg", "quality": 8}],
}
EXTRA: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "white-box/blur-2+jpeg-40": ("white-box", [{"kind": "blur", "radius": 2.0},
                                               {"kind": "jpeg", "quality": 40}]),
    "studio-bottle/noise-12+jpeg-60": ("studio-bottle", [{"kind": "noise", "sigma": 12.0,
                                                          "seed": 13},
                                                         {"kind": "jpeg", "quality": 60}]),
}


def recipes() -> list[dict[str, Any]]:
    entries = [
        {"id": f"{scene}/{name}", "scene": SCENES[scene], "distortions": steps}
        for scene in SCENES
        for name, steps in DISTORTIONS.items()
    ]
    entries += [{"id": key, "scene": SCENES[scene], "distortions": steps}
                for key, (scene, steps) in EXTRA.items()]
    return entries


def render(recipe: Mapping[str, Any]) -> np.ndarray:
    """The recipe's pixels: RGB uint8 H x W x 3, deterministic."""
    scene = dict(recipe["scene"])
    scene["size"] = tuple(scene["size"])
    if isinstance(scene.get("background"), list):
        scene["background"] = tuple(scene["background"])
    image = synthetic.render_product(**scene)
    for step in recipe["distortions"]:
        if step["kind"] == "blur":
            image = synthetic.blur(image, step["radius"])
        elif step["kind"] == "noise":
            rng = np.random.default_rng(step["seed"])
            pixels = np.asarray(image, dtype=np.float64)
            pixels = pixels + rng.normal(0.0, step["sigma"], pixels.shape)
            image = Image.fromarray(np.uint8(np.clip(np.rint(pixels), 0, 255)), "RGB")
        elif step["kind"] == "jpeg":
            data = synthetic.to_jpeg_bytes(image, quality=step["quality"])
            image = Image.open(io.BytesIO(data)).convert("RGB")
        else:
            raise ValueError(f"unknown distortion {step['kind']!r}")
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def pixels_md5(pixels: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(pixels).tobytes()).hexdigest()


# Runs inside the reference virtualenv: numpy<2, brisque 0.2.0; no project code.
_REFERENCE_SCRIPT = r'''
import json, sys
from importlib.metadata import version
import cv2, numpy as np, skimage.color
from PIL import Image
from brisque import BRISQUE

manifest, out = sys.argv[1], sys.argv[2]
model = BRISQUE(url=False)
results = {}
for key, png in json.load(open(manifest)).items():
    rgb = np.asarray(Image.open(png).convert("RGB"))
    # The same steps as BRISQUE.score, kept apart to record the features.
    grey = skimage.color.rgb2gray(rgb)
    full = model.calculate_brisque_features(grey, kernel_size=7, sigma=7 / 6)
    half = cv2.resize(grey, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
    both = list(full) + list(model.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6))
    results[key] = {"score": float(model.score(rgb)),
                    "features": [float(np.ravel(v)[0]) for v in both]}
versions = {name: version(name) for name in
            ("brisque", "numpy", "scipy", "scikit-image", "opencv-python-headless",
             "libsvm-official")}
json.dump({"versions": versions, "results": results}, open(out, "w"))
'''


def ensure_reference_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        logger.info("creating %s", venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REFERENCE_REQUIREMENTS],
                   check=True)
    return python


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    python = ensure_reference_venv(args.venv)
    entries = recipes()
    with tempfile.TemporaryDirectory() as scratch:
        manifest: dict[str, str] = {}
        for number, entry in enumerate(entries):
            pixels = render(entry)
            entry["shape"] = list(pixels.shape)
            entry["pixels_md5"] = pixels_md5(pixels)
            png = Path(scratch) / f"{number:03d}.png"
            Image.fromarray(pixels, "RGB").save(png)
            manifest[entry["id"]] = str(png)
        (Path(scratch) / "manifest.json").write_text(json.dumps(manifest))
        (Path(scratch) / "score.py").write_text(_REFERENCE_SCRIPT)
        logger.info("scoring %d images with the reference package", len(entries))
        subprocess.run([str(python), str(Path(scratch) / "score.py"),
                        str(Path(scratch) / "manifest.json"), str(Path(scratch) / "out.json")],
                       check=True)
        reference = json.loads((Path(scratch) / "out.json").read_text())
    for entry in entries:
        entry.update(reference["results"][entry["id"]])
    document = {
        "generator": "tools/brisque_reference.py",
        "note": "whole-image BRISQUE scores of the brisque package; regenerate with the generator",
        "reference_versions": reference["versions"],
        "entries": entries,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    logger.info("wrote %d entries to %s", len(entries), args.out)


if __name__ == "__main__":
    main()
